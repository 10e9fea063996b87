"""torch.compile against eager for the predictor's model call: a 4-block ViT-L-width model, 448, K (argv[1], default 1).

    python benchmarks/results/compile_check.py 1
"""
import torch, time, sys
from seggpt import SegGPT, get_config
from seggpt.predictor import SegGPTPredictor
torch.manual_seed(0); torch.set_num_threads(2)
cfg=get_config("vit-large").replace(depth=4, feature_layers=(2,3), merge_index=1)
m=SegGPT(cfg).eval(); h,w=cfg.image_size
K=int(sys.argv[1]) if len(sys.argv)>1 else 1
img=torch.randn(1,3,h,w); pi=torch.randn(1,K,3,h,w); pm=torch.randn(1,K,3,h,w)
for dt in (torch.bfloat16, None):
    p=SegGPTPredictor(m,dtype=dt); p.infer(img,pi,pm)
    best=1e9
    for _ in range(3):
        t=time.perf_counter(); ref=p.infer(img,pi,pm); best=min(best,time.perf_counter()-t)
    c=SegGPTPredictor(m,dtype=dt).compile()
    t=time.perf_counter(); c.infer(img,pi,pm); first=time.perf_counter()-t
    bc=1e9
    for _ in range(3):
        t=time.perf_counter(); out=c.infer(img,pi,pm); bc=min(bc,time.perf_counter()-t)
    print(dt, K, f"eager {best:.2f}s compiled {bc:.2f}s (first call incl. compile {first:.1f}s) speedup {best/bc:.2f}x diff {((out.float()-ref.float()).norm()/ref.float().norm()).item():.2e}", flush=True)
