# RBAC without wildcards: grants name what they grant.
package main

import rego.v1

import data.lib.k8s

# rbac-wildcard: no "*" in a Role or ClusterRole rule's verbs, resources or apiGroups.
deny contains {"rule": "rbac-wildcard", "field": sprintf("rules[%d].%s", [i, key]), "msg": msg} if {
	input.kind in {"Role", "ClusterRole"}
	some i, rule in input.rules
	some key in ["verbs", "resources", "apiGroups"]
	"*" in object.get(rule, key, [])
	msg := sprintf("%s: rule %d grants every %s (*)", [k8s.name, i, key])
}
