# Probes on Deployments: traffic only reaches ready pods; stuck pods get restarted.
package main

import rego.v1

import data.lib.k8s

# deployment-readiness-probe: every Deployment container has a readinessProbe.
deny contains {"rule": "deployment-readiness-probe", "field": sprintf("%s.readinessProbe", [c[0]]), "msg": msg} if {
	input.kind == "Deployment"
	some c in k8s.app_containers
	not c[1].readinessProbe
	msg := sprintf("%s: container %s has no readinessProbe", [k8s.name, c[1].name])
}

# deployment-liveness-probe (warn): a livenessProbe restarts a wedged process.
warn contains {"rule": "deployment-liveness-probe", "field": sprintf("%s.livenessProbe", [c[0]]), "msg": msg} if {
	input.kind == "Deployment"
	some c in k8s.app_containers
	not c[1].livenessProbe
	msg := sprintf("%s: container %s has no livenessProbe", [k8s.name, c[1].name])
}
