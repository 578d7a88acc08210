"""Batch jobs and sharded search on a real two-node Ray cluster (loopback, one CPU per node):
the same output, line for line, as the job run in one process; a worker node killed in the
middle of a job either costs nothing (Ray retries) or fails the job cleanly (no output file)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

try:
    import ray  # noqa: F401
except ImportError:
    if os.environ.get("EMBSTORE_REQUIRE_ALL") == "1":
        raise
    pytest.skip("ray is not installed (pip install 'embstore[ray]'); EMBSTORE_REQUIRE_ALL=1 makes this a failure",
                allow_module_level=True)

from click.testing import CliRunner
from embstore_cli.app import cli
from ray_cluster import LocalRayCluster

EMBSTORE = [sys.executable, "-m", "embstore_cli"]


@pytest.fixture(scope="module")
def cluster():
    local = LocalRayCluster()
    try:
        yield local.start(workers=1)
    finally:
        local.stop()


def here(*args) -> str:
    """The job's standard output, run in this process without Ray."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def embstore(*args, ray_address=None, check=True):
    """The CLI in its own process (a Ray driver is one per process), on the cluster at ``ray_address``."""
    extra = ["--ray", ray_address] if ray_address else []
    completed = subprocess.run(EMBSTORE + [str(a) for a in args] + extra, capture_output=True, text=True,
                               timeout=180)
    if check:
        assert completed.returncode == 0, completed.stderr
    return completed


@pytest.fixture(scope="module")
def batches(tmp_path_factory, small_store_path):
    from embstore import Store

    folder = tmp_path_factory.mktemp("batches")
    with Store.open(small_store_path) as store:
        words = store.vocabulary()
    # 9,000 queries: three blocks of 4,096 and a short one, with an unknown word and a case match
    (folder / "words.txt").write_text("\n".join(words[:8_998] + ["Paris", "notaword123"]) + "\n")
    analogies = [f"{words[i]} {words[i + 1]} {words[i + 2]}" for i in range(0, 3_000, 3)] + ["man king woman"]
    (folder / "analogies.txt").write_text("\n".join(analogies) + "\n")
    return folder


def test_nearest_batch_on_ray_equals_one_process(cluster, small_store_path, batches):
    args = ["nearest", "--batch", batches / "words.txt", "-k", "5", "--db", small_store_path]
    alone, there = here(*args), embstore(*args, ray_address=cluster.address)
    assert there.stdout == alone
    assert len(alone.splitlines()) == 9_000 and "notaword123\tERROR" in alone
    lines = there.stderr.splitlines()
    assert "nearest: 3 blocks, 9,000 queries done" in lines
    assert "note: 'Paris' is not in the vocabulary; using 'paris' (case-insensitive match)" in lines  # TSV notes
    assert lines[-1] == "note: 1 query had an unknown word; its line says which"


def test_analogy_batch_on_ray_equals_one_process(cluster, small_store_path, batches):
    args = ["analogy", "--batch", batches / "analogies.txt", "-k", "3", "--db", small_store_path]
    alone, there = here(*args), embstore(*args, ray_address=cluster.address)
    assert there.stdout == alone and len(alone.splitlines()) == 1_001


def test_eval_analogies_on_ray_equals_one_process(cluster, small_store_path):
    datapath = pytest.importorskip("gensim.test.utils").datapath
    args = ["eval", "analogies", datapath("questions-words.txt"), "--restrict", "20000", "--json",
            "--db", small_store_path]
    import json

    alone = json.loads(here(*args))
    there = json.loads(embstore(*args, ray_address=cluster.address).stdout)
    alone.pop("seconds"), there.pop("seconds")
    assert there == alone and alone["total"]["correct"] > 1_000


def test_an_address_where_no_cluster_runs_is_one_clear_error_at_once(small_store_path, batches):
    from ray_cluster import free_ports

    started = time.monotonic()
    failed = embstore("nearest", "--batch", batches / "words.txt", "--db", small_store_path,
                      ray_address=f"127.0.0.1:{free_ports(1)[0]}", check=False)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith("Error: cannot connect to the Ray cluster at '127.0.0.1:")
    assert "ray start --head" in failed.stderr and time.monotonic() - started < 30


NEIGHBOURS = ["neighbours", "--all", "-k", "10", "--block", "100"]


@pytest.fixture(scope="module")
def neighbours_alone(tmp_path_factory, small_store_path) -> bytes:
    output = tmp_path_factory.mktemp("alone") / "neighbours.tsv"
    here(*NEIGHBOURS, "-o", output, "--db", small_store_path)
    return output.read_bytes()


def test_neighbours_all_on_ray_equals_one_process(cluster, small_store_path, tmp_path, neighbours_alone):
    there = embstore(*NEIGHBOURS, "-o", tmp_path / "there.tsv", "--db", small_store_path, ray_address=cluster.address)
    assert (tmp_path / "there.tsv").read_bytes() == neighbours_alone
    assert "200 blocks, 20,000 of 20,000 queries done" in there.stderr


def test_sharded_exact_search_equals_the_unsharded_store(cluster, small_store_path, batches):
    args = ["nearest", "--batch", batches / "words.txt", "-k", "10", "--exact", "--db", small_store_path]
    alone = here(*args)
    there = embstore(*args, "--shards", 3, ray_address=cluster.address)
    assert there.stdout == alone
    approximate = embstore(*args[:-3], "--index", "hnsw", "--db", small_store_path, "--shards", 2,
                           ray_address=cluster.address)
    recall = float(approximate.stderr.split("recall@10 of the hnsw shards against exact search: ")[1].split()[0])
    assert 0.95 <= recall <= 1.0
    lines, exact_lines = approximate.stdout.splitlines(), alone.splitlines()
    assert [line.split("\t")[0] for line in lines] == [line.split("\t")[0] for line in exact_lines]


def test_each_shard_actor_loads_its_file_of_a_sharded_store(cluster, store_copy, batches):
    """``embstore shard`` wrote one file per shard (and an HNSW graph each): every actor loads
    its own file, and the merged answers equal the unsharded store's; after a word change the
    shard files hold the new rows, and the stale graphs are not used."""
    from embstore import Store

    with Store.open(store_copy) as store:
        store.shard(3, graphs=True)
    args = ["nearest", "--batch", batches / "words.txt", "-k", "10", "--exact", "--db", store_copy]
    alone = here(*args)
    there = embstore(*args, "--shards", 3, ray_address=cluster.address)
    assert there.stdout == alone
    assert "searching 3 shard files of the store" in there.stderr
    approximate = embstore(*args[:-3], "--index", "hnsw", "--db", store_copy, "--shards", 3,
                           ray_address=cluster.address)
    assert "3 shard files of the store with their stored HNSW graphs" in approximate.stderr
    recall = float(approximate.stderr.split("recall@10 of the hnsw shards against exact search: ")[1].split()[0])
    assert 0.95 <= recall <= 1.0
    here("delete", "king", "queen", "--db", store_copy)
    alone = here(*args)
    there = embstore(*args, "--shards", 3, ray_address=cluster.address)
    assert there.stdout == alone and "searching 3 shard files of the store" in there.stderr
    other = embstore(*args, "--shards", 2, ray_address=cluster.address)  # not the store's layout: ranges
    assert other.stdout == alone and "the store's own layout has 3 shards" in other.stderr
    stale = embstore(*args[:-3], "--index", "hnsw", "--db", store_copy, "--shards", 3, ray_address=cluster.address)
    assert "the stored graphs are stale" in stale.stderr


def test_killed_worker_node_restarts_its_shard_actor(cluster, small_store_path, batches):
    args = ["nearest", "--batch", batches / "words.txt", "-k", "10", "--exact", "--db", small_store_path]
    alone = here(*args)
    worker_node = len(cluster.nodes) - 1
    for attempt in range(3):  # in CI, twice in a row, no shard was seen on the worker node within 60 s
        alive = len(cluster.nodes) - len(cluster.killed)
        cluster.wait_for_nodes(alive)  # every node up before shards are placed
        # Shard i goes to live node i mod nodes, in NodeID order (random): with as many shards as
        # nodes every node holds one (with 2 shards among 3 nodes the worker could hold none, and
        # the test waited 60 s a try for nothing: 143 s in one run)
        job = subprocess.Popen(EMBSTORE + [str(a) for a in args] + ["--shards", str(max(2, alive)),
                                                                    "--ray", cluster.address],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            cluster.wait_until_running(worker_node, "_ShardActor")  # the shard placed on the worker node
        except RuntimeError:
            job.kill()
            job.communicate()
            continue
        cluster.kill_node(worker_node)
        stdout, stderr = job.communicate(timeout=180)
        assert job.returncode == 0, stderr
        assert stdout == alone  # the lost shard's actor was restarted elsewhere and reloaded its rows
        cluster.add_worker("w8")
        return
    pytest.fail("in three tries no shard actor ran on the worker node")


def _job_killing_a_node(cluster, small_store_path, output, retries):
    """Start a neighbours job on the cluster; once a block has finished and the worker node is
    in the middle of one, kill that node."""
    command = EMBSTORE + NEIGHBOURS + ["-o", str(output),
                                       "--db", str(small_store_path), "--ray", cluster.address,
                                       "--ray-retries", str(retries)]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = [job.stderr.readline()]
    assert "blocks" in seen[0] and "20,000 of" not in seen[0], seen[0] + job.stderr.read()
    worker_node = len(cluster.nodes) - 1
    cluster.wait_until_running(worker_node, "_answer_task")
    cluster.kill_node(worker_node)
    stdout, stderr = job.communicate(timeout=180)
    return job.returncode, "".join(seen) + stderr


def test_killed_worker_node_costs_nothing_with_retries(cluster, small_store_path, tmp_path, neighbours_alone):
    code, stderr = _job_killing_a_node(cluster, small_store_path, tmp_path / "there.tsv", retries=5)
    assert code == 0, stderr
    assert (tmp_path / "there.tsv").read_bytes() == neighbours_alone
    cluster.add_worker("w9")  # the next test kills a node too


def test_killed_worker_node_without_retries_fails_cleanly(cluster, small_store_path, tmp_path, neighbours_alone):
    output = tmp_path / "there.tsv"
    for attempt in range(3):
        code, stderr = _job_killing_a_node(cluster, small_store_path, output, retries=0)
        if code != 0:
            break
        # The kill landed just after the node's block finished (a block is ~0.1 s; seen in CI on
        # a busy machine): nothing was lost, so the whole output is right. A new node, and again.
        assert output.read_bytes() == neighbours_alone
        output.unlink()
        cluster.add_worker(f"w{10 + attempt}")
    assert code == 1, stderr
    assert "Error: a block of the job failed on the Ray cluster" in stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []  # no output, no partial file beside it
