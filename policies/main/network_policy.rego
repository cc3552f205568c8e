# A NetworkPolicy in every namespace that runs pods, so traffic is allowed on purpose.
package main

import rego.v1

import data.lib.k8s

# namespace-network-policy: the namespace of every workload has at least one NetworkPolicy,
# rendered by any app (data.capstan.cluster.networkPolicyNamespaces is computed across apps).
deny contains {"rule": "namespace-network-policy", "field": "metadata.namespace", "msg": msg} if {
	count(k8s.pod_specs) > 0
	ns := namespace
	not data.capstan.cluster.networkPolicyNamespaces[ns]
	msg := sprintf("%s: namespace %s has no NetworkPolicy", [k8s.name, ns])
}

namespace := input.metadata.namespace

namespace := data.capstan.namespace if not input.metadata.namespace
