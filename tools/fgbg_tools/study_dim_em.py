"""STUDY (intensity-02): the readout refitted by EM on a trained x90_dim layered model, the
weights fixed: each place's rate and (MODE=pixel) its template's light per pixel or
(MODE=scalar) one brightness for every template, fitted on 250 training images; with
NOOTH=1 every other place's gate is closed. Prints, per cell, AUROC, TPR and FPR at 0.5 of
P_p on the first 500 validation images, as trained ("old") and refitted ("EM").

    MODE=pixel NOOTH=1 python study_dim_em.py RUN_DIR x90_dim SEED   # RUN_DIR holds results/
"""
import sys, torch, numpy as np
from sklearn.metrics import roc_auc_score
import torch.nn.functional as F
from fgbg.training import load_trained
from fgbg.store import open_split
from fgbg.models.layered import inference as inf
from fgbg.models.layered.foreground import template_window
torch.manual_seed(0)
import os
MODE=os.environ.get('MODE','pixel'); NOOTH=os.environ.get('NOOTH')
res=sys.argv[1]; scen=sys.argv[2]; seed=sys.argv[3]; NT=int(sys.argv[4]) if len(sys.argv)>4 else 250
m,_=load_trained(f"{res}/results/models/{scen}/layered/seed{seed}/model.pt"); m.eval()
u,v,off,sd=[float(t) for t in m.composition.values()]
lam=m.config["fg_pixel_penalty"]
fg=m.foreground; k=fg.kernel; window,pad=template_window(k),k//2
def parts(x):
    post=inf.refine(m,x,m.encode(x)); means={n:mu for n,(mu,_) in post.items()}
    with torch.no_grad():
        log_not_gt, log_not_f = fg.fold(F.logsigmoid(fg.gate_logits(means["z_fg"])).flatten(2))
        W=lambda t: F.unfold(t, window, padding=pad, stride=k)
        lno=W(log_not_f)-log_not_gt
        inside=W(m.padding.pad(torch.ones_like(x)))
        xw=W(m.padding.pad(x)); bw=torch.sigmoid(W(m.background.logits(means["z_bg"])))
        c=torch.ones_like(lno) if NOOTH else lno.exp()
        base=off+u*(1-c)+v*bw
        return (xw-base)*inside, c*inside
def load(split,n):
    d=open_split(f"{res}/results/data/{scen}/seed{seed}/{split}.zarr").load()
    x=torch.as_tensor(d["images"].values[:n]).float().unsqueeze(1)
    rs,cs=zip(*[parts(b) for b in x.split(50)])
    return d, torch.cat(rs), torch.cat(cs)
def evid(a,r,c): return ((a*c*r - (a*c)**2/2)/sd**2 - lam*a*c).sum(1)
_,r,c=load("train",NT)
t=torch.exp(F.logsigmoid(10*fg.templates)); t=t/t.amax(1,keepdim=True)
a0=(u*t)[0].detach().clone()  # (w2, P)
rate0=fg.place_rate.clamp(1e-4,1-1e-4).clone()
a=a0.clone(); rate=torch.full_like(rate0,0.5)
for it in range(int(sys.argv[5]) if len(sys.argv)>5 else 100):
    P=torch.sigmoid(torch.logit(rate)+evid(a,r,c))  # (N,P)
    rate=P.mean(0).clamp(1e-4,1-1e-4)
    Pw=P.unsqueeze(1)
    if MODE=="scalar":
        tt=a0/u
        uu=((Pw*tt*c*r).sum() - lam*sd**2*(Pw*tt*c).sum())/((Pw*(tt*c)**2).sum())
        a=uu.clamp(min=0)*tt
    elif MODE=="pixel":
        a=((Pw*c*r).sum(0) - lam*sd**2*(Pw*c).sum(0))/((Pw*c*c).sum(0)+1e-6)
        a=a.clamp(min=0)
d,r,c=load("val",500)
N=len(r)
cm=d["cell_mask"].values.astype(bool); dm=d["disk_mask"].values.astype(bool)
ca=d["cell_active"].values[:N].astype(bool); da=d["disk_active"].values[:N].astype(bool)
P0=torch.sigmoid(torch.logit(rate0)+evid(a0,r,c)).numpy()
P1=torch.sigmoid(torch.logit(rate)+evid(a,r,c)).numpy()
gw=fg.grid[1]
rows=[]
for ci in range(len(cm)):
    ys,xs=np.nonzero(cm[ci]); p=int(ys.mean()//k)*gw+int(xs.mean()//k)
    cov=dm[:,cm[ci]].any(1)
    bgon=da[:,cov].any(1) if cov.any() else np.zeros(N,bool)
    for name,sel in [("outside" if not cov.any() else "bg_off",~bgon),("bg_on",bgon)]:
        if not sel.any(): continue
        y=ca[sel,ci]
        out=[]
        for P in (P0,P1):
            s=P[sel,p]; out+= [roc_auc_score(y,s), (s[y]>.5).mean(), (s[~y]>.5).mean()]
        rows.append((ci,name,*out))
print("cell stratum | old AUC TPR FPR | EM AUC TPR FPR")
for rrow in rows: print("%d %-8s | %.3f %.3f %.3f | %.3f %.3f %.3f"%rrow)
print("u fit", float(a.max()), "a sum per place (cells' places):", a.sum(0)[[int(np.nonzero(cm[i])[0].mean()//k)*gw+int(np.nonzero(cm[i])[1].mean()//k) for i in range(len(cm))]].numpy().round(1))
