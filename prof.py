import sys, time, cProfile, pstats, torch
sys.path.insert(0, "/work/main")
torch.set_num_threads(1)
from benchinit import load_study, run
from benchinit.execute import plan, run_batch
study = load_study("s.toml")
b = plan(study.cells(), study.registry, device="cpu")[0]
run_batch(b)
t = time.perf_counter(); run_batch(b); print("batch of", len(b.cells), "in", round(time.perf_counter() - t, 2), "s")
cProfile.run("run_batch(b)", "p.out")
st = pstats.Stats("p.out"); st.sort_stats("cumtime").print_stats(25)
