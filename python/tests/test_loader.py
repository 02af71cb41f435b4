"""The trainer-side client against a real `syllabus serve` (run by `make test`)."""

import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import unittest
import zlib

import numpy as np

import syllabus_loader
from syllabus_loader import Loader, ServeError, batch_weights, window_weights

from helpers import FIXTURES, Serve, ShmDir, curriculum, syllabus, workdir_with_curriculum

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = None
C2 = None  # prose + code, 6867 sequences of 64 tokens in 108 shards


def setUpModule():
    global WORK, C2
    WORK, C2 = workdir_with_curriculum("syllabus-loader-tests-")


def tearDownModule():
    shutil.rmtree(WORK, ignore_errors=True)


def shard_tokens(directory):
    """The curriculum's tokens read straight from its shard files."""
    with open(os.path.join(directory, "manifest.json")) as f:
        m = json.load(f)
    parts = []
    for s in m["shards"]:
        if s["format"] == "syllabus":
            a = np.fromfile(os.path.join(directory, s["path"]), dtype="<u2", count=s["sequences"] * m["seq_len"],
                            offset=64)
            parts.append(a.reshape(s["sequences"], m["seq_len"]))
    return np.concatenate(parts)


def run_rank(curr, shm, rank, world_size, batch_size, **kw):
    args = dict(curriculum=curr, rank=rank, world_size=world_size, batch_size=batch_size, **kw)
    return subprocess.Popen([sys.executable, os.path.join(HERE, "rank.py"), json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, SYLLABUS_SHM_DIR=shm))


def lines(proc):
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"rank failed ({proc.returncode}):\n{err}")
    return [json.loads(x) for x in out.splitlines()]


class Order(unittest.TestCase):
    def test_four_ranks_see_every_sequence_once_in_curriculum_order(self):
        expected = shard_tokens(C2)
        with ShmDir() as shm, Serve(C2, shm_dir=shm) as srv:
            self.assertEqual(srv.ready["sequences"], len(expected))
            procs = [run_rank(C2, shm, r, 4, 8) for r in range(4)]
            per_rank = [lines(p) for p in procs]
        g = 32
        steps = len(per_rank[0])
        self.assertEqual(steps, -(-len(expected) // g))
        seen = []
        for step in range(steps):
            for r in range(4):
                b = per_rank[r][step]
                self.assertEqual(b["step"], step)
                seen.extend(b["index"])
                # The tokens are the curriculum's, sequence for sequence.
                self.assertEqual(b["crc"], zlib.crc32(expected[b["index"]].tobytes()))
        self.assertEqual(seen, list(range(len(expected))))

    def test_batches_are_views_of_shared_memory(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            ld = Loader(C2, 1, 2, 16, shm_dir=shm)
            b = next(iter(ld))
            self.assertEqual(b["tokens"].shape, (16, 64))
            self.assertFalse(b["tokens"].flags.owndata)
            self.assertFalse(b["tokens"].flags.writeable)
            self.assertEqual(b["index"].tolist(), list(range(16, 32)))
            self.assertEqual(b["weights"].dtype, np.float32)
            self.assertEqual(len(ld.domain_names), 2)

    def test_last_short_batch_is_split_or_dropped(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            n = 6867
            lds = [Loader(C2, r, 3, 100, shm_dir=shm) for r in range(3)]
            last = [list(ld)[-1]["index"] for ld in lds]
            self.assertEqual(sum(len(x) for x in last), n % 300)
            self.assertEqual([len(x) for x in last], [100, 100, 67])
            dropped = Loader(C2, 0, 3, 100, drop_last=True, shm_dir=shm)
            self.assertEqual(len(dropped), n // 300)

    def test_later_passes_reorder_whole_batches_by_seed(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            def order(seed, **kw):
                ld = Loader(C2, 0, 1, 500, seed=seed, passes=3, shm_dir=shm, **kw)
                return [int(b["index"][0]) // 500 for b in ld]
            a, b, c = order(1), order(1), order(2)
            per = -(-6867 // 500)
            self.assertEqual(a, b)
            self.assertEqual(a[:per], list(range(per)), "the first pass is the curriculum's order")
            for p in (1, 2):
                self.assertEqual(sorted(a[p * per:(p + 1) * per]), list(range(per)))
                self.assertEqual(a[(p + 1) * per - 1], per - 1, "the short last batch stays last")
            self.assertNotEqual(a[per:], c[per:])
            self.assertEqual(order(1, shuffle_later_passes=False), list(range(per)) * 3)

    def test_the_pass_order_is_a_keyed_bijection_of_constant_size(self):
        from syllabus_loader import BatchPermutation
        for n in (0, 1, 2, 3, 5, 16, 17, 1000, 4097):
            p = BatchPermutation(n, 3, 1)
            self.assertEqual(sorted(p[i] for i in range(n)), list(range(n)), n)
        a, b = BatchPermutation(1000, 3, 1), BatchPermutation(1000, 3, 2)
        self.assertNotEqual([a[i] for i in range(1000)], [b[i] for i in range(1000)])
        # 10^9 batches: O(1) to build and to index, whatever the curriculum's size.
        huge = BatchPermutation(10**9, 0, 1)
        firsts = [huge[i] for i in range(4)]
        self.assertTrue(all(0 <= x < 10**9 for x in firsts) and len(set(firsts)) == 4)
        self.assertEqual(firsts, [BatchPermutation(10**9, 0, 1)[i] for i in range(4)])


class MapMode(unittest.TestCase):
    """serve --stage map: the tokens stay in the (verified) shard files, which ranks map."""

    def test_same_batches_as_copy_mode_across_shard_boundaries(self):
        expected = shard_tokens(C2)
        with ShmDir() as shm:
            with Serve(C2, shm_dir=shm) as copy:
                copied = copy.ready["bytes"]
            with Serve(C2, "--stage", "map", shm_dir=shm) as srv:
                self.assertEqual(srv.ready["stage"], "map")
                self.assertLess(srv.ready["bytes"] * 5, copied, "the segment holds no tokens")
                procs = [run_rank(C2, shm, r, 3, 50) for r in range(3)]  # 150 a step: shards hold 64
                per_rank = [lines(p) for p in procs]
                seen = [i for step in zip(*per_rank) for b in step for i in b["index"]]
                self.assertEqual(seen, list(range(len(expected))))
                for b in (b for rank in per_rank for b in rank):
                    self.assertEqual(b["crc"], zlib.crc32(expected[b["index"]].tobytes()))
                one = next(iter(Loader(C2, 0, 1, 10, shm_dir=shm)))
                self.assertFalse(one["tokens"].flags.owndata, "within one shard: a view of the file")

    def test_a_steered_plan_gathers_from_the_files(self):
        expected = shard_tokens(C2)
        with ShmDir() as shm, Serve(C2, "--stage", "map", "--feedback", "dump", "--log",
                                    os.path.join(WORK, "map.jsonl"), shm_dir=shm):
            ld = Loader(C2, 0, 1, 40, shm_dir=shm)
            for b in ld:
                np.testing.assert_array_equal(b["tokens"], expected[b["index"]])
                ld.report({"prose": [0.1], "code": [0.9]})
                if b["step"] == 6:
                    break
            self.assertGreater(int((b["domains"] == ld.domain_names.index("code")).sum()), 30)


class Resume(unittest.TestCase):
    def test_world_size_4_to_2_continues_at_the_next_sequence(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            four = [Loader(C2, r, 4, 8, shm_dir=shm) for r in range(4)]
            its = [iter(ld) for ld in four]
            for _ in range(7):
                for it in its:
                    next(it)
            state = four[2].state_dict()
            self.assertEqual(state["position"], 7 * 32)
            self.assertEqual(state, four[0].state_dict(), "the state is the same on every rank")
            two = [Loader(C2, r, 2, 16, shm_dir=shm) for r in range(2)]
            for ld in two:
                ld.load_state_dict(json.loads(json.dumps(state)))
            rest = [list(ld) for ld in two]
            got = [i for step in zip(*rest) for b in step for i in b["index"].tolist()]
            self.assertEqual(got, list(range(7 * 32, 6867)))
            with self.assertRaisesRegex(ValueError, "global batch size"):
                Loader(C2, 0, 2, 8, shm_dir=shm).load_state_dict(state)
            with self.assertRaisesRegex(ValueError, "seed"):
                Loader(C2, 0, 2, 16, seed=5, shm_dir=shm).load_state_dict(state)

    def test_consumer_killed_mid_run_restarts_from_its_state_and_others_go_on(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            other = run_rank(C2, shm, 0, 2, 64)
            victim = run_rank(C2, shm, 1, 2, 64, sleep=0.02)
            got = []
            while len(got) < 5:
                got.append(json.loads(victim.stdout.readline()))
            victim.send_signal(signal.SIGKILL)
            victim.communicate()
            first = lines(other)
            self.assertEqual(len(first), -(-6867 // 128), "the other rank read the whole pass")
            again = lines(run_rank(C2, shm, 1, 2, 64, state=got[-1]["state"]))
            steps = [b["step"] for b in got] + [b["step"] for b in again]
            self.assertEqual(steps, list(range(len(first))))
            mine = [i for b in got + again for i in b["index"]]
            expected = [i for s in range(len(first)) for i in range(s * 128 + 64, min(s * 128 + 128, 6867))]
            self.assertEqual(mine, expected)


class Failures(unittest.TestCase):
    def test_serve_killed_gives_a_clear_error_and_a_restart_resumes_exactly(self):
        with ShmDir() as shm:
            srv = Serve(C2, shm_dir=shm)
            ld = Loader(C2, 0, 1, 50, shm_dir=shm)
            it = iter(ld)
            for _ in range(3):
                next(it)
            state = ld.state_dict()
            srv.kill()
            t = time.monotonic()
            with self.assertRaisesRegex(ServeError, "is gone"):
                for _ in it:
                    time.sleep(0.02)  # a training step; liveness is checked every 10 ms
            self.assertLess(time.monotonic() - t, 2.0)
            with self.assertRaisesRegex(ServeError, "gone"):
                Loader(C2, 0, 1, 50, shm_dir=shm)
            with Serve(C2, shm_dir=shm) as again:
                self.assertEqual(again.ready["replaced_stale_pid"], srv.pid)
                with self.assertRaisesRegex(ServeError, "restaged"):
                    next(iter(ld))
                ld2 = Loader(C2, 0, 1, 50, shm_dir=shm)
                ld2.load_state_dict(state)
                self.assertEqual(next(iter(ld2))["index"].tolist(), list(range(150, 200)))
            with self.assertRaisesRegex(ServeError, "stopped serving|no curriculum"):
                next(iter(ld2))

    def test_a_waiting_rank_errors_when_serve_dies(self):
        with ShmDir() as shm:
            srv = Serve(C2, "--feedback", "dump", "--log", os.path.join(WORK, "wait.jsonl"), shm_dir=shm)
            ld = Loader(C2, 1, 2, 4, shm_dir=shm)
            it = iter(ld)
            for _ in range(3):  # steps 0..2 need no report (lag 2)
                next(it)
            killer = subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -9 {srv.pid}"])
            t = time.monotonic()
            with self.assertRaisesRegex(ServeError, "gone"):
                next(it)
            killer.wait()
            self.assertLess(time.monotonic() - t, 3.0)
            srv.stop()

    def test_two_curricula_on_one_node_do_not_meet(self):
        other = curriculum(os.path.join(WORK, "c-math"), domains=("math",), seq_len=32)
        with ShmDir() as shm, Serve(C2, shm_dir=shm) as a, Serve(other, shm_dir=shm) as b:
            self.assertNotEqual(a.ready["segment"], b.ready["segment"])
            la, lb = Loader(C2, 0, 1, 4, shm_dir=shm), Loader(other, 0, 1, 4, shm_dir=shm)
            self.assertEqual((la.seq_len, lb.seq_len), (64, 32))
            self.assertEqual(lb.domain_names, ["math"])
            self.assertEqual(next(iter(lb))["tokens"].tolist(), shard_tokens(other)[:4].tolist())
            # The same curriculum twice: refused while the first lives, unless named apart.
            dup = Serve(C2, shm_dir=shm, expect_fail=True)
            self.assertIn("already served", dup.error)
            with Serve(C2, "--name", "second-run", shm_dir=shm) as named:
                self.assertTrue(named.ready["segment"].endswith("-second-run"))
                lc = Loader("second-run", 0, 1, 4, shm_dir=shm)
                self.assertEqual(next(iter(lc))["index"].tolist(), [0, 1, 2, 3])

    def test_a_curriculum_served_by_another_user_is_found(self):
        with open(os.path.join(C2, "manifest.json")) as f:
            cid = syllabus_loader.curriculum_id(json.load(f))
        with ShmDir() as shm:
            mine = os.path.join(shm, f"syllabus-{os.getuid()}-{cid[:16]}")
            self.assertEqual(syllabus_loader.segment_path(C2, shm), mine, "nothing there: this user's name")
            theirs = os.path.join(shm, f"syllabus-4242-{cid[:16]}")
            open(theirs, "w").close()
            self.assertEqual(syllabus_loader.segment_path(C2, shm), theirs)
            open(mine, "w").close()
            self.assertEqual(syllabus_loader.segment_path(C2, shm), mine, "this user's own first")

    def test_segment_permissions_are_explicit(self):
        with ShmDir() as shm:
            with Serve(C2, shm_dir=shm) as srv:
                for p in (srv.ready["segment"], srv.ready["socket"], srv.ready["segment"] + ".lock"):
                    self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600, p)
            with Serve(C2, "--mode", "640", shm_dir=shm) as srv:
                self.assertEqual(stat.S_IMODE(os.stat(srv.ready["segment"]).st_mode), 0o640)
            bad = Serve(C2, "--mode", "044", shm_dir=shm, expect_fail=True)
            self.assertIn("--mode", bad.error)
            self.assertEqual([f for f in os.listdir(shm) if not f.endswith(".lock")], [],
                             "a clean stop leaves no segment or socket")


class Feedback(unittest.TestCase):
    def serve(self, shm, log, *args):
        return Serve(C2, "--feedback", "dump", "--log", log, *args, shm_dir=shm)

    def test_dump_report_moves_the_mixture_as_the_oracle_says(self):
        log = os.path.join(WORK, "dump-oracle.jsonl")
        with ShmDir() as shm, self.serve(shm, log):
            ld = Loader(C2, 0, 1, 20, shm_dir=shm)
            it = iter(ld)
            first = next(it)
            self.assertEqual(first["index"].tolist(), list(range(20)), "before any decision: curriculum order")
            d = ld.report({"prose": [0.5] * 100, "code": {"mean": -0.3, "count": 100}})
            np.testing.assert_allclose([d["mixture"]["prose"], d["mixture"]["code"]], [0.8808, 0.1192], atol=5e-5)
            self.assertEqual((d["report_step"], d["applies_from_step"], d["applies_from_sequence"]), (0, 3, 60))
            # The later reports keep A = [0.5, 0.3] and n equal: the mixture stays.
            batches = [first]
            for _ in range(12):
                batches.append(next(it))
                d = ld.report({"prose": [0.5], "code": [0.3]})
                self.assertAlmostEqual(d["mixture"]["prose"], 0.8808, places=4)
            for b in batches[1:3]:
                self.assertEqual(b["index"].tolist(), list(range(b["step"] * 20, b["step"] * 20 + 20)))
            doms = np.concatenate([b["domains"] for b in batches[3:]])
            prose = int((doms == ld.domain_names.index("prose")).sum())
            self.assertLessEqual(abs(prose - 0.8808 * len(doms)), 1.5, (prose, len(doms)))
            idx = np.concatenate([b["index"] for b in batches])
            self.assertEqual(len(set(idx.tolist())), len(idx), "no sequence twice")

    def test_steered_run_resumes_with_the_same_mixture_after_serve_restarts(self):
        log = os.path.join(WORK, "dump-resume.jsonl")

        def run(ld, steps, start=0):
            out = []
            for b in ld:
                out.append(b["index"].tolist())
                s = b["step"]
                ld.report({"prose": [0.1 * (s % 3)], "code": [0.2]})
                if len(out) == steps:
                    break
            return out

        with ShmDir() as shm:
            with self.serve(shm, os.path.join(WORK, "dump-straight.jsonl")):
                straight = run(Loader(C2, 0, 1, 16, shm_dir=shm), 40)
            srv = self.serve(shm, log)
            ld = Loader(C2, 0, 1, 16, shm_dir=shm)
            head = run(ld, 25)
            state = ld.state_dict()
            srv.kill()
            with self.serve(shm, log) as again:
                self.assertEqual(again.ready["decisions_replayed"], 25)
                ld2 = Loader(C2, 0, 1, 16, shm_dir=shm)
                ld2.load_state_dict(state)
                tail = run(ld2, 15)
        self.assertEqual(head + tail, straight)
        with open(log) as f:
            self.assertEqual(len(f.read().splitlines()), 1 + 40)

    def test_the_decision_log_is_a_sql_table(self):
        log = os.path.join(WORK, "c2-copy")
        shutil.copytree(C2, log)
        with ShmDir() as shm, Serve(log, "--feedback", "dump", shm_dir=shm):
            ld = Loader(log, 0, 1, 10, shm_dir=shm)
            for b in ld:
                ld.report({"prose": [0.5] * 100, "code": [0.3] * 100})
                if b["step"] == 1:
                    break
        r = syllabus("sql", log, "--format", "csv", "-c",
                     "SELECT decision, report_step, applies_from_step, domain, round(mixture, 4) AS p "
                     "FROM mixture_log ORDER BY decision, domain")
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        self.assertEqual([(x["decision"], x["domain"], x["p"]) for x in rows[:2]],
                         [("1", "code", "0.1192"), ("1", "prose", "0.8808")])
        self.assertEqual(rows[-1]["applies_from_step"], "4")

    def test_ranks_other_than_the_reporter_do_not_report_and_wait_for_decisions(self):
        with ShmDir() as shm, self.serve(shm, os.path.join(WORK, "two-ranks.jsonl")):
            r0, r1 = Loader(C2, 0, 2, 5, shm_dir=shm, timeout=1.0), Loader(C2, 1, 2, 5, shm_dir=shm, timeout=1.0)
            self.assertIsNone(r1.report({"prose": [1.0]}))
            i0, i1 = iter(r0), iter(r1)
            for _ in range(3):
                next(i0), next(i1)
            with self.assertRaisesRegex(TimeoutError, "report of step 0"):
                next(i1)
            with self.assertRaisesRegex(RuntimeError, "has not sent"):
                next(i0)

    def test_loader_arguments_are_checked(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            self.assertEqual(Loader(C2, np.int64(1), np.int32(2), 4, shm_dir=shm).rank, 1)
            for args, err in (((2, 2, 4), "rank 2"), ((0, 0, 4), "world_size"), ((0, 1, 0), "batch_size")):
                with self.assertRaisesRegex(ValueError, err):
                    Loader(C2, *args, shm_dir=shm)
            with self.assertRaisesRegex(TypeError, "an integer"):
                Loader(C2, 0.5, 1, 4, shm_dir=shm)

    def test_bad_reports_are_refused_with_a_reason(self):
        with ShmDir() as shm, self.serve(shm, os.path.join(WORK, "bad.jsonl")):
            ld = Loader(C2, 0, 1, 5, shm_dir=shm)
            next(iter(ld))
            with self.assertRaisesRegex(ValueError, "unknown domain"):
                ld.report({"poetry": [1.0]})
            with self.assertRaisesRegex(ValueError, "finite"):
                ld.report({"prose": [float("nan")]})
            for big in (1e308, float("inf"), -2e12):
                with self.assertRaisesRegex(ValueError, "finite|within"):
                    ld.report({"prose": [big]})
            # serve refuses them too (a client that skips the check), and stays usable.
            with self.assertRaisesRegex(ServeError, "within"):
                ld._seg.request({"op": "report", "step": 0, "stats": {"prose": [1e308]}})
            self.assertIsNotNone(ld.report({"prose": [0.5], "code": [0.25]}))
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            ld = Loader(C2, 0, 1, 5, shm_dir=shm)
            next(iter(ld))
            with self.assertRaisesRegex(ServeError, "without a feedback rule"):
                ld.report({"prose": [1.0]})


class Example(unittest.TestCase):
    def test_the_example_training_loop_runs_steered_and_resumes(self):
        example = os.path.join(HERE, "..", "examples", "train_loop.py")
        state = os.path.join(WORK, "example-state.json")
        with ShmDir() as shm, Serve(C2, "--feedback", "dump", "--log", os.path.join(WORK, "example.jsonl"),
                                    shm_dir=shm):
            env = dict(os.environ, SYLLABUS_SHM_DIR=shm)
            run = lambda *a: subprocess.run([sys.executable, example, C2, "--save", state, *a], env=env,
                                            capture_output=True, text=True, check=True).stdout.splitlines()
            out = run("--steps", "4")
            self.assertEqual(len(out), 4)
            self.assertIn("mixture from step 3", out[0])
            with open(state) as f:
                self.assertEqual(json.load(f)["position"], 4 * 8)
            more = run("--steps", "6", "--resume", state)
            self.assertTrue(more[0].startswith("step 4:"), more)


class Reweight(unittest.TestCase):
    def test_oracles(self):
        np.testing.assert_allclose(window_weights([1, 2, 3], "linupper", 1.0), [0.1554, 0.4223, 0.4223], atol=5e-5)
        for s in syllabus_loader.reweight.STRATEGIES:
            np.testing.assert_allclose(window_weights([2.5] * 4, s), [0.25] * 4)
            np.testing.assert_allclose(window_weights([1.0, 5.0, 2.0, 9.0], s, 1e12), [0.25] * 4, atol=1e-9)
            w = window_weights(np.random.default_rng(0).gamma(2.0, size=50), s, 0.4)
            self.assertTrue(np.all(w > 0))
            self.assertAlmostEqual(w.sum(), 1.0)
        np.testing.assert_allclose(batch_weights([1.0, 2.0, 3.0], step=10, burnout=100), [1, 1, 1])

    def test_same_weights_as_the_offline_stage(self):
        rng = np.random.default_rng(3)
        table = os.path.join(WORK, "losses.jsonl")
        with open(os.path.join(FIXTURES, "lake", "prose.jsonl")) as f, open(table, "w") as out:
            for line in f:
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc.get("text"), str) and doc["text"]:
                    doc["loss"] = float(rng.gamma(3.0))
                    out.write(json.dumps(doc) + "\n")
        for strategy, temperature in (("linupper", 1.0), ("quadratic", 0.4), ("extremes", 0.7)):
            out = os.path.join(WORK, f"rw-{strategy}")
            syllabus("curriculum", table, "--tokenizer", os.path.join(FIXTURES, "tokenizer.json"), "--seq-len", 64,
                     "--reweight-by", "loss", "--strategy", strategy, "--temperature", temperature,
                     "--window", 37, "--out", out)
            r = syllabus("sql", out, "--format", "csv", "-c", "SELECT loss, weight FROM curriculum ORDER BY position")
            rows = list(csv.DictReader(io.StringIO(r.stdout)))
            loss = np.array([float(x["loss"]) for x in rows])
            offline = np.array([float(x["weight"]) for x in rows])
            online = np.concatenate([batch_weights(loss[i:i + 37], strategy, temperature)
                                     for i in range(0, len(loss), 37)])
            np.testing.assert_allclose(online, offline, rtol=1e-6, err_msg=strategy)


if __name__ == "__main__":
    unittest.main()
