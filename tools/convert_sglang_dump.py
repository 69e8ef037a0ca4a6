"""Converts an SGLang expert-distribution recorder dump (.pt, from /dump_expert_distribution_record) into JSON that
`moescope import sglang` reads, keeping the recorder's own keys:

    python3 tools/convert_sglang_dump.py DUMP.pt [MORE.pt …] --out dump.json

per_token mode: {"records": [{"forward_pass_id", "rank", "forward_mode", "input_ids", "topk_ids_of_layer"}]}
(topk_ids_of_layer [layers, tokens, k]; several files, e.g. one per rank, are merged into one record list);
stat mode: {"logical_count": [steps, layers, experts]} (a 2-D [layers, experts] count becomes one step).
Needs torch; loads with weights_only=False because the dumps hold plain Python objects.
"""
import argparse
import json

import torch


def plain(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, (int, float, str)) or v is None:
        return v
    if hasattr(v, "value"):  # enums such as ForwardMode
        return int(v.value)
    return str(v)


KEEP = ("forward_pass_id", "rank", "forward_mode", "input_ids", "topk_ids_of_layer")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dumps", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    records, stat = [], None
    for path in args.dumps:
        d = torch.load(path, map_location="cpu", weights_only=False)
        if "logical_count" in d:
            c = d["logical_count"]
            c = c.unsqueeze(0) if c.dim() == 2 else c
            stat = c if stat is None else torch.cat([stat, c])
        elif "records" in d:
            records += [{k: plain(r[k]) for k in KEEP if k in r} for r in d["records"]]
        else:
            raise SystemExit(f"{path}: neither a per_token dump (records) nor a stat dump (logical_count)")
    doc = {"logical_count": stat.tolist()} if stat is not None else {"records": records}
    with open(args.out, "w") as f:
        json.dump(doc, f)
        f.write("\n")


if __name__ == "__main__":
    main()
