import random, sys, os
seed = int(sys.argv[1]); random.seed(seed)
plains = ["0777", "0o17", "0x1F", "-0x1f", "1e3", "1E3", "1.0", "-1.5", ".5", "5.", "+12", "-0", "1_000", "09", "08.5", "yes", "no", "on", "off", "y", "n", "True", "FALSE", "~", "null", "Null", "2024-01-01", "2024-1-2", "2024-01-01T10:00:00Z", "2024-01-01 10:00:00", "2024-01-01T10:00:00.500+02:00", "2024-01-01t10:00:00Z", "1:20", "1:20:30.5", "12345678901234567890", "123456789012345678901234", "1e400", "0.1e-10", "abc", "a b", "true1", "0b101", "-0b11", "+.5", "0.", "00", "1__2", "_1", "1_", "0x_1F", "0xG", "12e", "1e+5", "-1e-5", "3.14159265358979323846", "1234567.0", "100000000000000000000.5"]
keys = ["a", "b", "c", "d", "e"]
docs = []
for i in range(30):
    lines = ["apiVersion: example.com/v1", "kind: Thing", "metadata:", "  name: t%d" % i]
    if random.random() < 0.5:
        lines.append("  annotations:")
        for k in random.sample(keys, 3):
            lines.append("    %s: %s" % (k, random.choice(plains) if random.random() < 0.8 else '"' + random.choice(plains) + '"'))
    lines.append("spec:")
    for k in random.sample(keys, 4):
        v = random.choice(plains)
        style = random.random()
        if style < 0.6: lines.append("  %s: %s" % (k, v))
        elif style < 0.8: lines.append("  %s: '%s'" % (k, v))
        elif style < 0.9: lines.append("  %s: [%s, \"%s\"]" % (k, v, v))
        else: lines.append("  %s:\n  - %s\n  - - %s\n  - x: %s" % (k, v, v, v))
    docs.append("\n".join(lines) + "\n")
os.makedirs(sys.argv[2], exist_ok=True)
open(os.path.join(sys.argv[2], "r.yaml"), "w").write("---\n".join(docs))
open(os.path.join(sys.argv[2], "kustomization.yaml"), "w").write("resources:\n- r.yaml\n")
