package main

import rego.v1

test_namespace_network_policy_allowed if {
	not denied("namespace-network-policy") with input as good_deployment with data.capstan.cluster as cluster_with_policy
}

test_namespace_network_policy_denied if {
	denied("namespace-network-policy") with input as good_deployment with data.capstan.cluster as {"networkPolicyNamespaces": {"other": true}}
}

test_namespace_network_policy_uses_destination_namespace if {
	d := deployment_with([{"op": "remove", "path": "/metadata/namespace"}])
	denied("namespace-network-policy") with input as d with data.capstan.namespace as "bare" with data.capstan.cluster as cluster_with_policy
}

test_namespace_network_policy_ignores_non_workloads if {
	not denied("namespace-network-policy") with input as {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}} with data.capstan.cluster as {"networkPolicyNamespaces": {}}
}
