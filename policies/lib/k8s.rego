# Helpers shared by the shipped rules: where each workload kind keeps its pod spec, and every
# container with the field path that leads to it (so findings point at the right line).
package lib.k8s

import rego.v1

# Kinds whose pod template sits at spec.template.spec.
template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}

# pod_specs: [field path, pod spec] of the input object.
pod_specs contains ["spec", input.spec] if {
	input.kind == "Pod"
	input.spec
}

pod_specs contains ["spec.template.spec", input.spec.template.spec] if {
	template_kinds[input.kind]
	input.spec.template.spec
}

pod_specs contains ["spec.jobTemplate.spec.template.spec", input.spec.jobTemplate.spec.template.spec] if {
	input.kind == "CronJob"
	input.spec.jobTemplate.spec.template.spec
}

# containers: [field path, container, pod spec path, pod spec] for every container kind.
containers contains [path, c, ps[0], ps[1]] if {
	some ps in pod_specs
	some list in ["containers", "initContainers", "ephemeralContainers"]
	some i, c in ps[1][list]
	path := sprintf("%s.%s[%d]", [ps[0], list, i])
}

# Only the long-running containers (probes and some limits apply to these).
app_containers contains [path, c, ps[0], ps[1]] if {
	some ps in pod_specs
	some i, c in ps[1].containers
	path := sprintf("%s.containers[%d]", [ps[0], i])
}

# "Deployment web" for messages.
name := sprintf("%s %s", [input.kind, input.metadata.name])

has(obj, key) if _ = obj[key]

# A security setting as the container sees it: its own value, else the pod's.
setting(c, key) := c[1].securityContext[key]

setting(c, key) := c[3].securityContext[key] if {
	not has(object.get(c[1], "securityContext", {}), key)
}

# Where that setting is written (the container's field when neither sets it), for findings.
setting_path(c, key) := sprintf("%s.securityContext.%s", [c[0], key]) if {
	has(object.get(c[1], "securityContext", {}), key)
}

setting_path(c, key) := sprintf("%s.securityContext.%s", [c[2], key]) if {
	not has(object.get(c[1], "securityContext", {}), key)
	has(object.get(c[3], "securityContext", {}), key)
}

setting_path(c, key) := sprintf("%s.securityContext.%s", [c[0], key]) if {
	not has(object.get(c[1], "securityContext", {}), key)
	not has(object.get(c[3], "securityContext", {}), key)
}
