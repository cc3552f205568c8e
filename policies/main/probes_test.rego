package main

import rego.v1

test_deployment_readiness_probe_allowed if {
	not denied("deployment-readiness-probe") with input as good_deployment
}

test_deployment_readiness_probe_denied if {
	denied("deployment-readiness-probe") with input as deployment_with([{"op": "remove", "path": concat("", [container_path, "/readinessProbe"])}])
}

test_deployment_liveness_probe_allowed if {
	not warned("deployment-liveness-probe") with input as good_deployment
}

test_deployment_liveness_probe_warned if {
	warned("deployment-liveness-probe") with input as deployment_with([{"op": "remove", "path": concat("", [container_path, "/livenessProbe"])}])
}

test_probes_only_for_deployments if {
	job := json.patch(deployment_with([{"op": "remove", "path": concat("", [container_path, "/readinessProbe"])}]), [{"op": "replace", "path": "/kind", "value": "Job"}])
	not denied("deployment-readiness-probe") with input as job
}
