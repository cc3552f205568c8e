import random, json, sys, os
seed = int(sys.argv[1]); random.seed(seed)
alphabet = list("abcXYZ019 ") + [" ", "  ", ":", ": ", "#", " #", "-", "- ", "?", "'", '"', "\\", "\n", "\n\n", "\t", "é", "😀", "\u00a0", "\u2028", "\r", "{", "}", "[", "]", ",", "&", "*", "!", "|", ">", "%", "@", "`", "~", "=", "<<", "0", "0x", "1.5", "e3", "yes", "null", "true", ".", "---", "..."]
def rstr():
    n = random.choice([0,1,1,2,3,5,8,20,40])
    s = "".join(random.choice(alphabet) for _ in range(n))
    if random.random() < 0.1:
        s = " ".join("word%d" % i for i in range(random.randint(10, 30)))
    return s
def rval(d=0):
    r = random.random()
    if d < 2 and r < 0.1: return {rstr() or "k": rval(d+1) for _ in range(random.randint(0,3))}
    if d < 2 and r < 0.2: return [rval(d+1) for _ in range(random.randint(0,3))]
    if r < 0.25: return random.choice([0, 1, -5, 2**40, 1.5, 1e-7, 1e21, 123456.75, True, False, None])
    return rstr()
docs = []
for i in range(40):
    data = {}
    for j in range(random.randint(1, 6)):
        k = rstr() or "empty"
        data[k] = rval()
    docs.append({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t%d" % i}, "spec": data})
os.makedirs(sys.argv[2], exist_ok=True)
with open(os.path.join(sys.argv[2], "r.yaml"), "w") as f:
    f.write("\n---\n".join(json.dumps(d, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") for d in docs))
with open(os.path.join(sys.argv[2], "kustomization.yaml"), "w") as f:
    f.write("resources:\n- r.yaml\n")
