"""``neighbours --all`` and the blocks, shards and output file under the Ray jobs, without Ray:
answers against numpy brute force and the Store API, exact shard merges, no partial files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from embstore import Store
from embstore.distributed.blocks import id_ranges, split_blocks
from embstore.storage.shard_files import shard_ranges
from embstore.distributed.output_file import atomic_output
from embstore.distributed.shards import RowShard, merge_hits

from test_queries import assert_same_ranking, unit_rows


@pytest.fixture(scope="module")
def neighbours_tsv(tmp_path_factory, small_store_path):
    from click.testing import CliRunner
    from embstore_cli.app import cli

    output = tmp_path_factory.mktemp("neighbours") / "all.tsv"
    result = CliRunner().invoke(cli, ["neighbours", "--all", "-k", "5", "-o", str(output), "--block", "3000",
                                      "--db", str(small_store_path)])
    assert result.exit_code == 0, result.output
    return output


def test_neighbours_all_lists_every_word_in_id_order_with_its_nearest(neighbours_tsv, small_store_path,
                                                                       small_matrix):
    words, matrix = small_matrix
    lines = neighbours_tsv.read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in lines] == words
    rows = unit_rows(matrix)
    for position in (0, 1, 2_999, 3_000, 12_345, len(words) - 1):  # block edges and ends
        fields = lines[position].split("\t")
        ours = [(fields[i], float(fields[i + 1])) for i in range(1, len(fields), 2)]
        scores = rows @ rows[position]
        scores[position] = -np.inf
        expected = [(words[i], float(scores[i])) for i in np.argsort(-scores)[:5]]
        assert_same_ranking(ours, expected, tolerance=2e-6)


def test_neighbours_all_lines_equal_nearest_batch_answers(neighbours_tsv, small_store_path):
    lines = neighbours_tsv.read_text(encoding="utf-8").splitlines()
    with Store.open(small_store_path) as store:
        sample = store.vocabulary()[5_000:5_200]
        results = store.nearest_many(sample, k=5)
    expected = ["\t".join([r.query] + [f"{n.word}\t{n.score:.6f}" for n in r.neighbours]) for r in results]
    assert lines[5_000:5_200] == expected


def test_neighbours_parquet_holds_the_same_answers(run, tmp_path, small_store_path, neighbours_tsv):
    pq = pytest.importorskip("pyarrow.parquet")
    output = tmp_path / "all.parquet"
    result = run("neighbours", "--all", "-k", "5", "-o", output, "--format", "parquet", "--block", "3000",
                 "--db", small_store_path)
    assert result.exit_code == 0, result.output
    table = pq.read_table(output).to_pydict()
    lines = neighbours_tsv.read_text(encoding="utf-8").splitlines()
    assert table["word"] == [line.split("\t")[0] for line in lines]
    for position in (0, 7_777, len(lines) - 1):
        fields = lines[position].split("\t")
        assert table["neighbours"][position] == fields[1::2]
        assert [f"{s:.6f}" for s in table["scores"][position]] == fields[2::2]


def test_output_file_appears_only_when_the_job_succeeds(tmp_path):
    final = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError):
        with atomic_output(final) as handle:
            handle.write("half a job\n")
            raise RuntimeError("the job failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(final) as handle:
        handle.write("whole\n")
    assert final.read_text() == "whole\n" and list(tmp_path.iterdir()) == [final]


def test_neighbours_bad_index_is_one_clear_error_and_no_file(run, tmp_path, small_store_path):
    output = tmp_path / "out.tsv"
    result = run("neighbours", "--all", "-o", output, "--index", "hnsw", "--db", small_store_path)
    assert result.exit_code == 1
    assert "Error: this store has no hnsw index" in result.output
    assert list(tmp_path.iterdir()) == []


def test_blocks_cover_the_input_in_order():
    blocks = list(split_blocks(iter(range(10)), 4))
    assert [(b.number, b.start, b.items) for b in blocks] == [(0, 0, [0, 1, 2, 3]), (1, 4, [4, 5, 6, 7]),
                                                              (2, 8, [8, 9])]
    assert [b.items for b in id_ranges(10, 4)] == [[(0, 4)], [(4, 8)], [(8, 10)]]
    for count, shards in ((10, 3), (7, 7), (3, 4), (400_000, 4)):
        ranges = shard_ranges(count, shards)
        assert len(ranges) == shards and ranges[0][0] == 0 and ranges[-1][1] == count
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_merge_keeps_the_best_by_score_then_lower_id():
    first = [[(5, 0.9), (1, 0.5)], [(2, 0.1)]]
    second = [[(9, 0.9), (7, 0.7)], [(8, 0.3), (6, 0.2)]]
    assert merge_hits([first, second], 3) == [[(5, 0.9), (9, 0.9), (7, 0.7)], [(8, 0.3), (6, 0.2), (2, 0.1)]]


@pytest.mark.parametrize("shards", [1, 3, 4])
def test_row_shards_merged_equal_the_whole_store_exactly(small_store_path, shards):
    with Store.open(small_store_path) as store:
        ids = list(range(0, len(store), 97))  # 207 queries: a batch, as the shards answer it
        queries = store.searcher.vectors(ids)
        exclude = [{i} for i in ids]
        whole = store.searcher.search("exact", queries, 10, exclude)
        parts = [RowShard.of_range(store, start, stop).search(queries, 10, exclude)
                 for start, stop in shard_ranges(len(store), shards)]
    assert merge_hits(parts, 10) == whole


def test_ray_option_without_ray_names_the_extra(tmp_path, small_store_path):
    batch = tmp_path / "words.txt"
    batch.write_text("king\n")
    hide_ray = ("import sys; sys.modules['ray'] = None; from embstore_cli.app import main; "
                "sys.argv = ['embstore'] + sys.argv[1:]; main()")
    completed = subprocess.run([sys.executable, "-c", hide_ray, "nearest", "--batch", str(batch), "--ray", "auto",
                                "--db", str(small_store_path)], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1
    assert completed.stderr.strip() == "Error: running on a Ray cluster needs Ray: pip install 'embstore[ray]'"


def test_hnsw_row_shards_find_nearly_all_exact_answers(small_store_path):
    from embstore.distributed.shards import recall

    with Store.open(small_store_path) as store:
        ids = list(range(0, len(store), 97))
        queries = store.searcher.vectors(ids)
        exclude = [{i} for i in ids]
        exact = store.searcher.search("exact", queries, 10, exclude)
        shards = [RowShard.of_range(store, start, stop, graph=True) for start, stop in shard_ranges(len(store), 2)]
        approximate = merge_hits([shard.search(queries, 10, exclude, "hnsw") for shard in shards], 10)
    found, expected = recall(approximate, exact)
    assert expected == 10 * len(ids) and 0.95 <= found / expected < 1.0 + 1e-9
    assert all(len(row) == 10 and ids[n] not in {i for i, _ in row} for n, row in enumerate(approximate))
