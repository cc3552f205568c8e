# Fixtures shared by the bundle's unit tests: a Deployment that passes every rule, and helpers
# that ask whether a rule fired for the current input.
package main

import rego.v1

good_deployment := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "web", "namespace": "shop"},
	"spec": {
		"selector": {"matchLabels": {"app": "web"}},
		"template": {
			"metadata": {"labels": {"app": "web"}},
			"spec": {
				"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
				"containers": [{
					"name": "web",
					"image": "ghcr.io/example/web:1.4.2",
					"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
					"resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
					"readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
					"livenessProbe": {"httpGet": {"path": "/live", "port": 8080}},
				}],
			},
		},
	},
}

# The good Deployment with JSON patch operations applied.
deployment_with(ops) := json.patch(good_deployment, ops)

container_path := "/spec/template/spec/containers/0"

cluster_with_policy := {"networkPolicyNamespaces": {"shop": true}}

denied(rule) if {
	some r in deny
	r.rule == rule
}

warned(rule) if {
	some r in warn
	r.rule == rule
}
