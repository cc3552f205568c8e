# Resource requests and limits: the scheduler needs requests, memory needs a ceiling.
package main

import rego.v1

import data.lib.k8s

# container-resources: every container requests cpu and memory and limits memory.
deny contains {"rule": "container-resources", "field": sprintf("%s.resources.%s.%s", [c[0], kind, res]), "msg": msg} if {
	some c in k8s.containers
	some [kind, res] in [["requests", "cpu"], ["requests", "memory"], ["limits", "memory"]]
	not c[1].resources[kind][res]
	msg := sprintf("%s: container %s has no resources.%s.%s", [k8s.name, c[1].name, kind, res])
}

# container-cpu-limit (warn): a CPU limit caps noisy neighbours; some teams prefer none.
warn contains {"rule": "container-cpu-limit", "field": sprintf("%s.resources.limits.cpu", [c[0]]), "msg": msg} if {
	some c in k8s.app_containers
	not c[1].resources.limits.cpu
	msg := sprintf("%s: container %s has no resources.limits.cpu", [k8s.name, c[1].name])
}
