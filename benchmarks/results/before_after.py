"""Old (f2867c3) against new code, one process each, ViT-L K=1 and 3, fp32 and bf16, one query each after warm-up."""
import sys, time, torch
sys.path.insert(0, sys.argv[1])
from seggpt import SegGPT, get_config
from seggpt.predictor import SegGPTPredictor
import seggpt; print(seggpt.__file__, flush=True)
torch.manual_seed(0); torch.set_num_threads(2)
m=SegGPT("vit-large").eval(); h,w=m.config.image_size
for K in (1,3):
    g=torch.Generator().manual_seed(K)
    img=torch.randn(1,3,h,w,generator=g); pi=torch.randn(1,K,3,h,w,generator=g); pm=torch.randn(1,K,3,h,w,generator=g)
    for dt in (None, torch.bfloat16):
        p=SegGPTPredictor(m,dtype=dt)
        if K==1: p.infer(img,pi,pm)
        t=time.perf_counter(); p.infer(img,pi,pm); s=time.perf_counter()-t
        print(sys.argv[1], K, dt, f"{s:.2f} s", flush=True)
