package main

import rego.v1

role(rules) := {
	"apiVersion": "rbac.authorization.k8s.io/v1",
	"kind": "ClusterRole",
	"metadata": {"name": "reader"},
	"rules": rules,
}

test_rbac_wildcard_allowed if {
	not denied("rbac-wildcard") with input as role([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
}

test_rbac_wildcard_denied if {
	denied("rbac-wildcard") with input as role([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}])
}

test_rbac_wildcard_api_groups_denied if {
	denied("rbac-wildcard") with input as role([{"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["get"]}])
}
