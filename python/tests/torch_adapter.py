"""The torch adapter (`make test-torch`, where torch is installed)."""

import os
import shutil
import unittest

import numpy as np
import torch

from syllabus_loader import Loader
from syllabus_loader.torch import DataLoader, Dataset, to_tensors

from helpers import Serve, ShmDir, workdir_with_curriculum

WORK = C2 = None


def setUpModule():
    global WORK, C2
    WORK, C2 = workdir_with_curriculum("syllabus-torch-tests-")


def tearDownModule():
    shutil.rmtree(WORK, ignore_errors=True)


class Torch(unittest.TestCase):
    def test_tensors_match_the_numpy_batches(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            b = next(iter(Loader(C2, 0, 1, 8, shm_dir=shm)))
            t = to_tensors(b, pin_memory=torch.cuda.is_available())
            self.assertEqual(t["tokens"].dtype, torch.int64)
            self.assertEqual(t["tokens"].shape, (8, 64))
            np.testing.assert_array_equal(t["tokens"].numpy(), b["tokens"])
            np.testing.assert_array_equal(t["index"].numpy(), np.arange(8))

    def test_workers_keep_the_order_and_state_counts_what_the_loop_received(self):
        with ShmDir() as shm, Serve(C2, shm_dir=shm):
            os.environ["SYLLABUS_SHM_DIR"] = shm
            plain = [b["index"].tolist() for b in Loader(C2, 1, 2, 16)]
            for workers in (0, 1, 3):
                dl = DataLoader(Dataset(C2, 1, 2, 16), num_workers=workers)
                got = []
                for b in dl:
                    got.append(b["index"].tolist())
                    if len(got) == 10:
                        state = dl.state_dict()
                        break
                self.assertEqual(state["position"], 10 * 32)
                dl2 = DataLoader(Dataset(C2, 1, 2, 16), num_workers=workers)
                dl2.load_state_dict(state)
                got += [b["index"].tolist() for b in dl2]
                self.assertEqual(got, plain, f"{workers} workers")

    def test_a_steered_run_with_workers_reports_from_the_main_process(self):
        with ShmDir() as shm, Serve(C2, "--feedback", "dump", "--log", os.path.join(WORK, "torch.jsonl"),
                                    shm_dir=shm):
            os.environ["SYLLABUS_SHM_DIR"] = shm
            dl = DataLoader(Dataset(C2, 0, 1, 16), num_workers=2)
            steps = []
            for b in dl:
                steps.append(b["step"])
                d = dl.report({"prose": [0.5], "code": [0.3]})
                self.assertEqual(d["report_step"], b["step"])
                if len(steps) == 12:
                    break
            self.assertEqual(steps, list(range(12)))


if __name__ == "__main__":
    unittest.main()
