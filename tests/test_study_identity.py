"""Who a worker is."""

from tornadostudy.study.identity import cpu_description, worker_id


def test_a_worker_id_is_unique_even_for_a_reused_pid():
    first, second = worker_id(), worker_id()
    assert first != second and first.split(":")[:2] == second.split(":")[:2]


def test_the_cpu_a_trial_ran_on_is_described():
    assert cpu_description().split()[1] == "CPUs" and int(cpu_description().split()[0]) >= 1
