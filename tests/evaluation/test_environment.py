"""The machine record written with every result (`config.environment_info`)."""

import platform

from rls_tf.evaluation import config, report


def test_cpu_model_reads_the_first_model_name(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n"
                    "\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14\n")
    assert config.cpu_model(str(path)) == "AMD EPYC 9B14"


def test_cpu_model_falls_back_without_a_model_name(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t:   \n")
    assert config.cpu_model(str(path)) == (platform.processor() or None)
    assert config.cpu_model(str(tmp_path / "missing")) == (platform.processor() or None)


def test_environment_records_the_cpu_and_the_report_names_it(tiny_results, tmp_path):
    env = config.environment_info()
    assert env.get("cpu_model") == config.cpu_model()
    # A copy: the fixture is shared by the session's other tests.
    results = {**tiny_results, "environment": {**tiny_results.get("environment", {}),
                                               "cpu_count": 2, "cpu_model": "Test CPU 9000"}}
    paths = report.write_reports(results, str(tmp_path / "out"), command="python x.py")
    text = open(paths["markdown"], encoding="utf-8").read()
    assert "2 CPU core(s) (Test CPU 9000)." in text
