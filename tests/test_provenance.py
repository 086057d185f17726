import subprocess

from nlplab.provenance import git_commit, machine


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True)


def test_result_files_do_not_make_a_checkout_dirty(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "speed.md").write_text("old\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "c")
    head = git_commit(tmp_path)
    assert len(head) == 40
    (tmp_path / "benchmarks" / "results" / "speed.md").write_text("new\n")
    (tmp_path / "untracked.txt").write_text("?\n")
    assert git_commit(tmp_path / "benchmarks") == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"
    assert git_commit(tmp_path.parent / "nowhere") is None


def test_machine_names_the_threads():
    info = machine()
    assert info["torch_threads"] >= 1 and info["blas_threads"] >= 1 and info["cores"] >= 1
