"""Each run of a project saves under a version no other run of it took, even when two start in the
same millisecond (Kedro's session timestamp)."""

from concurrent.futures import ProcessPoolExecutor

from headstart.context import LAST_SAVE_VERSION, unique_save_version

STAMP = "2026-12-06T01.22.56.192Z"


def test_a_version_already_taken_moves_to_the_next_millisecond_and_a_newer_one_is_kept(tmp_path):
    assert unique_save_version(tmp_path, STAMP) == STAMP
    assert unique_save_version(tmp_path, STAMP) == "2026-12-06T01.22.56.193Z"
    assert unique_save_version(tmp_path, "2026-12-06T01.22.56.100Z") == "2026-12-06T01.22.56.194Z"  # never older
    assert unique_save_version(tmp_path, "2026-12-06T01.22.59.999Z") == "2026-12-06T01.22.59.999Z"
    assert unique_save_version(tmp_path, "2026-12-06T01.22.59.999Z") == "2026-12-06T01.23.00.000Z"
    assert (tmp_path / LAST_SAVE_VERSION).read_text() == "2026-12-06T01.23.00.000Z"
    (tmp_path / LAST_SAVE_VERSION).write_text("not a version")  # a damaged record blocks no run
    assert unique_save_version(tmp_path, STAMP) == STAMP


def test_processes_asking_at_once_for_one_timestamp_each_get_their_own(tmp_path):
    with ProcessPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(unique_save_version, [tmp_path] * 8, [STAMP] * 8))
    assert len(set(versions)) == 8 and min(versions) == STAMP
