# A NetworkPolicy in every namespace that runs pods, so traffic is allowed on purpose.
package main

import rego.v1

import data.lib.k8s

# namespace-network-policy: the namespace of every workload has at least one NetworkPolicy,
# rendered by any app (data.capstan.cluster.networkPolicyNamespaces is computed across apps).
# A workload without metadata.namespace lands in the app's destination namespace.
deny contains {"rule": "namespace-network-policy", "field": "metadata.namespace", "msg": msg} if {
	count(k8s.pod_specs) > 0
	ns := input.metadata.namespace
	not data.capstan.cluster.networkPolicyNamespaces[ns]
	msg := sprintf("%s: namespace %s has no NetworkPolicy", [k8s.name, ns])
}

deny contains {"rule": "namespace-network-policy", "field": "metadata", "msg": msg} if {
	count(k8s.pod_specs) > 0
	not input.metadata.namespace
	ns := data.capstan.namespace
	is_string(ns)
	not data.capstan.cluster.networkPolicyNamespaces[ns]
	msg := sprintf("%s: namespace %s has no NetworkPolicy", [k8s.name, ns])
}
