"""embstore serve's JSON API, on a real uvicorn server in its own process, checked against the
Store API in this process and the CLI's --json; bad and hostile input; another process's changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the serve extra: pip install 'embstore[serve]'")
pytest.importorskip("uvicorn", reason="needs the serve extra: pip install 'embstore[serve]'")

from embstore import Store, UnknownWordError  # noqa: E402
from embstore.json_answers import to_plain  # noqa: E402
from embstore.plot import project  # noqa: E402
from embstore.serve import api_spec  # noqa: E402

from conftest import SAMPLE  # noqa: E402
from served import copy_store, running_server  # noqa: E402


@pytest.fixture(scope="module")
def server(small_store_path, tmp_path_factory):
    with running_server(small_store_path, tmp_path_factory.mktemp("serve") / "serve.log", "--client-timeout", "2") \
            as running:
        yield running


@pytest.fixture(scope="module")
def store(small_store_path):
    with Store.open(small_store_path) as opened:
        yield opened


def same_result(api: dict, expected) -> None:
    """An API result equals a QueryResult of the Store API: same words in order, same scores."""
    assert api["query"] == expected.query
    assert [n["word"] for n in api["neighbours"]] == expected.words()
    assert [n["score"] for n in api["neighbours"]] == pytest.approx([s for _, s in expected], abs=1e-6)
    assert api["notes"] == expected.notes and api["error"] == expected.error


def test_answers_equal_the_store_api(server, store):
    for word, k in (("king", 10), ("water", 3), ("King", 5)):
        status, body = server.get(f"/api/nearest?word={word}&k={k}")
        assert status == 200, body
        same_result(body, store.nearest(word, k=k, case_insensitive=True))
    status, body = server.get("/api/nearest?word=paris&k=4&restrict=1000")
    same_result(body, store.nearest("paris", k=4, restrict=1000))
    for method in ("add", "mul"):
        status, body = server.get(f"/api/analogy?a=man&b=king&c=woman&k=5&method={method}")
        assert status == 200, body
        same_result(body, store.analogy("man", "king", "woman", k=5, method=method))
    assert body["neighbours"][0]["word"] == "queen"

    status, body = server.get("/api/nearest?k=3", data=json.dumps(["king", "Paris", "zzqxv"]).encode(), method="POST")
    assert status == 200, body
    expected = store.nearest_many(["king", "Paris", "zzqxv"], k=3, on_unknown="report", case_insensitive=True)
    assert len(body) == 3 and body[2]["error"].startswith("unknown word 'zzqxv'")
    for got, want in zip(body, expected):
        same_result(got, want)
    questions = [["man", "king", "woman"], ["france", "paris", "italy"], ["a", "b", "zzqxv"]]
    status, body = server.get("/api/analogy?k=2", data=json.dumps(questions).encode(), method="POST")
    assert status == 200, body
    for got, want in zip(body, store.analogy_many([tuple(q) for q in questions], k=2, on_unknown="report")):
        same_result(got, want)

    status, body = server.get("/api/similarity?w1=king&w2=Queen")
    assert body == {"first": "king", "second": "queen", "cosine": pytest.approx(store.similarity("king", "queen")),
                    "notes": ["'Queen' is not in the vocabulary; using 'queen' (case-insensitive match)"]}
    status, body = server.get("/api/odd-one-out?words=breakfast,cereal,dinner,lunch")
    odd, ranked = store.doesnt_match(["breakfast", "cereal", "dinner", "lunch"])
    assert body["odd_one_out"] == odd == "cereal"
    assert [n["word"] for n in body["cosine_to_mean"]] == [n.word for n in ranked]
    status, body = server.get("/api/vector?word=king")
    assert body["word"] == "king" and np.array_equal(np.array(body["vector"], dtype=np.float32), store.vector("king"))
    status, body = server.get("/api/words?prefix=Ki&limit=7")
    assert body == {"prefix": "Ki", "words": store.completions("Ki", 7)} and "king" in body["words"]
    status, body = server.get("/api/info")
    assert body == json.loads(json.dumps(to_plain(store.info())))

    status, body = server.get("/api/project?words=king,queen,man,woman&neighbours=2")
    assert status == 200, body
    expected = project(store, ["king", "queen", "man", "woman"], neighbours=2)
    assert body["words"] == expected.words and body["kind"] == expected.kind
    assert np.allclose(body["coordinates"], expected.coordinates, atol=1e-6)
    status, body = server.get("/api/project?words=king,queen,man,woman&dims=3")
    assert np.allclose(body["coordinates"], project(store, ["king", "queen", "man", "woman"], dims=3).coordinates,
                       atol=1e-6) and len(body["axis_labels"]) == 3
    status, body = server.get("/api/project?words=king+queen+man+woman&dims=3&method=tsne")
    assert status == 200, body
    assert np.array(body["coordinates"]).shape == (4, 3) and body["axis_labels"] == ["t-SNE 1", "t-SNE 2", "t-SNE 3"]
    status, body = server.get("/api/project?words=king,queen&method=tsne")  # t-SNE's perplexity must stay below 2
    assert status == 200 and np.array(body["coordinates"]).shape == (2, 2)


def close(one, two) -> bool:
    """Equal JSON, floats within 1e-6 (the last bit of a float32 score can depend on BLAS's blocking)."""
    if isinstance(one, float) or isinstance(two, float):
        return one == pytest.approx(two, abs=1e-6)
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(close(one[k], two[k]) for k in one)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(close(a, b) for a, b in zip(one, two))
    return one == two


def test_json_fields_are_the_clis(server, small_store_path, run):
    """The same function makes both: `embstore nearest king --json` and GET /api/nearest?word=king."""
    for cli_args, path in ((["nearest", "king", "-k", "4"], "/api/nearest?word=king&k=4"),
                           (["analogy", "man", "king", "woman", "-k", "3"], "/api/analogy?a=man&b=king&c=woman&k=3"),
                           (["similarity", "king", "queen"], "/api/similarity?w1=king&w2=queen"),
                           (["odd-one-out", "cat", "dog", "car"], "/api/odd-one-out?words=cat,dog,car"),
                           (["vector", "king"], "/api/vector?word=king")):
        printed = run(*cli_args, "--json", "--db", small_store_path)
        assert printed.exit_code == 0, printed.output
        assert close(json.loads(printed.stdout), server.get(path)[1]), cli_args


def test_unknown_word_is_404_with_suggestions(server, store):
    with pytest.raises(UnknownWordError) as raised:
        store.nearest("kingg")
    for path in ("/api/nearest?word=kingg", "/api/analogy?a=man&b=kingg&c=woman", "/api/similarity?w1=king&w2=kingg",
                 "/api/vector?word=kingg", "/api/odd-one-out?words=cat,kingg", "/api/project?words=king,kingg"):
        status, body = server.get(path)
        assert status == 404, (path, body)
        assert body["word"] == "kingg" and body["suggestions"] == raised.value.suggestions
        assert body["error"] == str(raised.value)


TEN_THOUSAND = ",".join(f"w{i}" for i in range(10_000))


@pytest.mark.parametrize("path, reason", [
    ("/api/nearest?word=king&k=0", "k must be between 1 and 1,000, not 0"),
    ("/api/nearest?word=king&k=100000000000", "k must be between 1 and 1,000"),
    ("/api/nearest?word=king&k=ten", "k must be a whole number, not 'ten'"),
    ("/api/nearest?word=king&k=1e3", "k must be a whole number"),
    ("/api/nearest?word=king&restrict=0", "restrict must be at least 1"),
    ("/api/nearest?word=king&index=annoy", "index must be one of exact, hnsw, ivf, sq8, pq, not 'annoy'"),
    ("/api/nearest?word=king&index=hnsw", "this store has no hnsw index; build it with"),
    ("/api/nearest", "/api/nearest needs word=WORD"),
    ("/api/nearest?word=", "/api/nearest needs word=WORD"),
    ("/api/nearest?wrod=king", "/api/nearest does not take 'wrod'; it takes word, k, restrict, index"),
    ("/api/nearest?word=king&word=queen", "'word' is given more than once"),
    ("/api/nearest?word=%FF%FE", "the query string is not valid UTF-8"),
    ("/api/nearest?word=%ED%A0%80", "the query string is not valid UTF-8"),  # an encoded surrogate
    ("/api/nearest?" + "&".join(f"p{i}=1" for i in range(30)), "too many parameters"),
    ("/api/nearest?word=" + "x" * 1001, "a word has at most 1,000 characters"),
    ("/api/analogy?a=man&b=king", "/api/analogy needs c=WORD"),
    ("/api/analogy?a=man&b=king&c=woman&method=sub", "method must be one of add, mul"),
    ("/api/odd-one-out?words=cat", "words must hold 2 to 100 words, not 1"),
    ("/api/odd-one-out?words=" + TEN_THOUSAND, "words must hold 2 to 100 words, not 10000"),
    ("/api/odd-one-out?words=" + ",".join(["w" * 20] * 5_000), "words is too long"),
    ("/api/odd-one-out?words=" + ",".join(["cat"] * 101), "words must hold 2 to 100 words, not 101"),
    ("/api/words?limit=0", "limit must be between 1 and 100"),
    ("/api/project?words=king,queen&dims=4", "dims must be between 2 and 3"),
    ("/api/project?words=king,queen&neighbours=51", "neighbours must be between 0 and 50"),
    ("/api/project?words=" + ",".join(["king"] * 100) + "&neighbours=20", "more than 1,000 points"),
    ("/api/project?words=" + ",".join(["king"] * 20) + "&neighbours=20&method=tsne", "more than 300 points"),
    ("/api/project?words=king", "needs at least 2 different words"),
    ("/api/project?words=king,queen&method=umap", "method must be one of pca, tsne"),
    ("/api/info?verbose=1", "/api/info does not take 'verbose'; it takes no parameters"),
])
def test_bad_parameters_are_400_with_one_line(server, path, reason):
    status, body = server.get(path)
    assert status == 400, body
    assert reason in body["error"] and "\n" not in body["error"]


@pytest.mark.parametrize("body, status, reason", [
    (b"", 400, "the body is empty"),
    (b"[\"king\"", 400, "the body is not valid JSON"),
    (b"\xff\xfe[]", 400, "the body is not valid UTF-8"),
    (b"{\"words\": [\"king\"]}", 400, "the body must be a JSON list, not dict"),
    (b"[]", 400, "a batch holds 1 to 1,000 queries, not 0"),
    (json.dumps(["w"] * 10_000).encode(), 400, "a batch holds 1 to 1,000 queries, not 10,000"),
    (b"[\"king\", 3]", 400, "query 2: a word is a string, not int"),
    (b"[\"\\ud800\"]", 400, "lone surrogate"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "the body is not valid JSON"),
])
def test_bad_batches(server, body, status, reason):
    got_status, got = server.get("/api/nearest", data=body, method="POST")
    assert got_status == status, got
    assert reason in got["error"]


def test_a_body_over_the_cap_is_413_before_it_is_all_sent(server):
    """The server answers from Content-Length and closes: a client still sending gets a broken
    pipe (urllib then loses the answer), so this one reads whatever the server said."""
    body = b"[\"" + b"x" * (2 << 20) + b"\"]"
    head = (f"POST /api/nearest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    answer = server.raw(head + body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"the body is larger than 1,024 KiB" in answer


def test_hostile_requests_get_an_error_and_the_server_keeps_serving(server):
    status, body = server.get("/api/analogy?k=2", data=b"[[\"man\", \"king\"]]", method="POST")
    assert status == 400 and "an analogy is a list of three words" in body["error"]
    status, body = server.get("/api/info", method="DELETE")
    assert status == 405 and body["error"] == "DELETE is not allowed on /api/info"
    status, body = server.get("/api/nope")
    assert status == 404 and "no such page" in body["error"]
    # Raw bytes that no client library would send: a non-UTF-8 byte in the query, a 100 KB
    # request line, a request cut off half-way, a client that goes away at once.
    close = b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = server.raw(b"GET /api/nearest?word=\xff" + close)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]  # refused by uvicorn's HTTP parser itself
    answer = server.raw(b"GET /api/nearest?word=" + b"a" * 100_000 + close)
    assert answer.startswith(b"HTTP/1.1 400") and b"a word has at most 1,000 characters" in answer, answer[:300]
    answer = server.raw(b"GET /api/odd-one-out?words=" + b"w1," * 12_000 + close)
    assert answer.startswith(b"HTTP/1.1 400") and b"words must hold 2 to 100 words" in answer, answer[:300]
    assert server.raw(b"GET /api/nearest?wo", hang_up=True) == b""  # cut off half-way: no answer, no harm
    assert server.raw(b"", hang_up=True) == b""
    for _ in range(5):  # a client that goes away before reading a large answer
        server.raw(b"GET /api/nearest?word=the&k=1000 HTTP/1.1\r\nHost: x\r\n\r\n", read=False)
    status, body = server.get("/api/nearest?word=king&k=1")
    assert status == 200 and body["neighbours"][0]["word"] == "prince"
    assert "Traceback" not in server.output()


def test_a_kept_alive_connection_answers_without_delay(server):
    """Answers on a reused connection are not held back by Nagle's algorithm against delayed
    ACKs (40 ms each when the server's socket lacked TCP_NODELAY)."""
    import http.client
    import statistics

    host, port = server.url.rsplit("/", 1)[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    times = []
    for _ in range(15):
        started = time.perf_counter()
        connection.request("GET", "/api/words?prefix=zq&limit=1")
        assert connection.getresponse().read()
        times.append(time.perf_counter() - started)
    connection.close()
    assert statistics.median(times) < 0.030, times


def test_slow_clients_lose_their_connection(server):
    """With --client-timeout 2: a client that sends nothing, half a request line, or half a body."""
    import socket

    host, port = server.url.rsplit("/", 1)[1].split(":")
    sent = [b"", b"GET /api/nearest?word=ki",
            b"POST /api/nearest HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\n[\"king\""]
    clients = []
    started = time.monotonic()
    for payload in sent:
        client = socket.create_connection((host, int(port)), timeout=20)
        client.sendall(payload)
        clients.append(client)
    answers = []
    for client in clients:
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
        answers.append(b"".join(chunks))
        client.close()
    assert time.monotonic() - started < 15
    assert answers[:2] == [b"", b""]
    assert answers[2].startswith(b"HTTP/1.1 408") and b"the body did not arrive within 2 s" in answers[2]
    assert server.get("/api/nearest?word=king&k=1")[0] == 200


def test_head_requests_answer_like_get_without_a_body(server):
    for path in ("/api/info", "/api/nearest?word=king", "/api/words?prefix=ki", "/"):
        request = urllib.request.Request(server.url + path, method="HEAD")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200 and response.read() == b""
    request = urllib.request.Request(server.url + "/api/nearest?word=kingg", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 404


def test_openapi_and_docs_describe_every_endpoint(server):
    status, schema = server.get("/openapi.json")
    assert status == 200 and schema["openapi"].startswith("3.")
    for endpoint in api_spec.ENDPOINTS:
        operation = schema["paths"][endpoint.path][endpoint.method.lower()]
        assert [p["name"] for p in operation["parameters"]] == list(endpoint.names)
    import urllib.request

    with urllib.request.urlopen(server.url + "/docs") as response:
        page = response.read().decode()
        assert response.headers["content-type"].startswith("text/html")
    for endpoint in api_spec.ENDPOINTS:
        assert f"{endpoint.method} {endpoint.path}" in page
    assert "1 to 1,000 answers per query" in page and "<script" not in page
    with urllib.request.urlopen(server.url + "/") as response:
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert b"/static/explorer.js" in response.read()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embstore_cli", *args], capture_output=True, text=True, timeout=120)


def test_changes_by_another_process_are_seen_without_a_restart(small_store_path, tmp_path):
    db = copy_store(small_store_path, tmp_path / "store")
    with Store.open(db) as store:
        words = len(store)
        near_king = store.vector("king") + np.float32(0.01)
        without = store.nearest("king", k=3).words()
    with running_server(db, tmp_path / "serve.log", "--workers", "2") as server:  # each process must see them
        # While the changes commit, a reader sees the store before or after each one, never between.
        answers, stop = [], threading.Event()
        reader = threading.Thread(target=lambda: [answers.append(server.get("/api/nearest?word=king&k=3"))
                                                  for _ in iter(stop.is_set, True)])
        reader.start()
        assert server.get("/api/nearest?word=zyzzyva")[0] == 404
        assert server.get("/api/nearest?word=king&index=sq8")[0] == 400
        added = cli("add", "zyzzyva", *[repr(float(v)) for v in near_king], "--db", str(db))
        assert added.returncode == 0, added.stderr
        status, body = server.get("/api/nearest?word=zyzzyva&k=1")
        assert status == 200 and body["neighbours"][0]["word"] == "king"
        assert server.get("/api/info")[1]["words"] == words + 1
        assert server.get("/api/words?prefix=zyzz")[1]["words"] == ["zyzzyva"]
        assert cli("index", "build", "--kind", "sq8", "--db", str(db)).returncode == 0
        status, body = server.get("/api/nearest?word=king&index=sq8&k=3")
        assert status == 200 and body["notes"] == [] and body["neighbours"][0]["word"] == "zyzzyva"
        assert cli("delete", "zyzzyva", "--db", str(db)).returncode == 0
        assert server.get("/api/nearest?word=zyzzyva")[0] == 404
        assert all(server.get("/api/info")[1]["words"] == words for _ in range(4))
        stop.set()
        reader.join()
        seen = {tuple(n["word"] for n in body["neighbours"]) for status, body in answers if status == 200}
        assert len(answers) > 10 and all(status == 200 for status, _ in answers)
        assert seen == {tuple(without), ("zyzzyva", *without[:2])}, seen
        replaced = cli("load", str(SAMPLE), "--db", str(db), "--replace", "--limit", "1000")
        assert replaced.returncode == 0, replaced.stderr
        assert all(server.get("/api/info")[1]["words"] == 1000 for _ in range(4))
        before = server.get("/api/nearest?word=queen&k=5")
        # A smaller store copied over the catalog (same inode, shorter file): errors, never a crash.
        small = copy_store(small_store_path, tmp_path / "small")
        Store.load(SAMPLE, small, replace=True, limit=50)
        shutil.copyfile(small, db)
        for path in ("/api/info", "/api/nearest?word=queen&k=5", "/api/nearest?word=the&k=2"):
            assert server.get(path)[0] in (200, 404, 503), path
        assert server.process.poll() is None
        # The store's files deleted under the server: it answers from the generation it holds, and says so in its log.
        Store.load(SAMPLE, db, replace=True, limit=1000)
        before = server.get("/api/nearest?word=queen&k=5")
        for file in db.parent.iterdir():
            file.unlink()
        assert server.get("/api/info")[0] in (200, 503)  # never a 500
        assert server.get("/api/nearest?word=queen&k=5") == before
        time.sleep(0.2)
        assert server.get("/api/nearest?word=queen&k=5") == before
        assert "cannot be read again" in server.output() and "Traceback" not in server.output()


def test_serve_errors_before_listening(tmp_path, run, small_store_path):
    result = run("serve", "--db", tmp_path / "none.db")
    assert result.exit_code == 1 and "Error: no store at" in result.output
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("serve", "--db", small_store_path, "--port", port)
    assert result.exit_code == 1 and f"Error: cannot listen on 127.0.0.1:{port}" in result.output
    without = subprocess.run([sys.executable, "-c", "import sys; sys.modules['uvicorn'] = None; "
                              "from embstore_cli.app import main; main()", "serve", "--db", str(small_store_path)],
                             capture_output=True, text=True, timeout=60)
    assert without.returncode == 1
    assert "Error: embstore serve needs Starlette and uvicorn (uvicorn is missing): pip install 'embstore[serve]'" \
        in without.stderr


def test_random_hostile_query_strings_never_get_a_500(server):
    """Parameters made of hostile pieces, on every GET endpoint: an answer or a 4xx, never a 5xx."""
    import random

    pieces = ["king", "Queen", "%00", "%FF", "%C3%A9", "%ED%A0%80", "%F0%9F%98%80", "+", "%20", ",", ",,", "-1", "0",
              "1e9", "99999999999999", "NaN", "inf", "'", '"', "%25", "%26", "=", "&", "\\", "..%2F..", "tsne", "mul",
              "hnsw", "x" * 1500, "%0A", "%E2%80%8B", "[]", "{}"]
    rng = random.Random(18)
    get_endpoints = [e for e in api_spec.ENDPOINTS if e.method == "GET"]
    for _ in range(250):
        endpoint = rng.choice(get_endpoints)
        names = list(endpoint.names) + ["bogus"]
        query = "&".join(f"{rng.choice(names)}={''.join(rng.choices(pieces, k=rng.randint(0, 3)))}"
                         for _ in range(rng.randint(0, 4)))
        status, body = server.get(f"{endpoint.path}?{query}")
        assert status in (200, 400, 404, 501), (endpoint.path, query, status, body)
        if status != 200:
            assert body["error"] and "\n" not in body["error"], (endpoint.path, query, body)
    assert server.get("/api/nearest?word=king&k=1")[0] == 200 and "Traceback" not in server.output()
