"""v4 against v3 on the Kodak images the v4 run has finished (all 24 since 2026-11-27): bpsp, times and exact decodes of
benchmarks/kodak_v4 (v4 and JPEG-XL e9) and of benchmarks/kodak (v3 and JPEG-XL e9, the earlier run).

    python benchmarks/compare_kodak_runs.py > benchmarks/kodak_v4/vs_v3.json
"""
import json
new=[json.loads(l) for l in open('benchmarks/kodak_v4/results.jsonl')]
old=[json.loads(l) for l in open('benchmarks/kodak/results.jsonl')]
done=[r['image'] for r in new if r['codec']=='pixlm-context-v4' and r.get('ok')]
def agg(rs, codec, imgs):
    sel=[r for r in rs if r['codec']==codec and r['image'] in imgs and r.get('ok')]
    sp=sum(r['subpixels'] for r in sel); by=sum(r['bytes'] for r in sel)
    enc=sum(r['encode_seconds'] for r in sel); dec=sum(r['decode_seconds'] for r in sel)
    return dict(n=len(sel), bpsp=round(8*by/sp,4), enc_s=round(enc/len(sel),1), dec_s=round(dec/len(sel),1),
                enc_sps=round(sp/enc), dec_sps=round(sp/dec), exact=sum(1 for r in sel if r.get('decodes_exact',0)>=1))
out={'images':len(done)}
out['v4']=agg(new,'pixlm-context-v4',done); out['jpegxl-e9']=agg(new,'jpegxl-e9',done)
out['v3_previous_run']=agg(old,'pixlm-context-v3',done); out['jpegxl-e9_previous_run']=agg(old,'jpegxl-e9',done)
v4=[r for r in new if r['codec']=='pixlm-context-v4' and r['image'] in done]
out['max_dec_s']=round(max(r['decode_seconds'] for r in v4),1)
out['v4_below_jxl']=sum(1 for r in v4 if r['bpsp'] < next(x['bpsp'] for x in new if x['codec']=='jpegxl-e9' and x['image']==r['image']))
print(json.dumps(out, indent=1))
