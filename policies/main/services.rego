# Services stay inside the cluster unless someone decided otherwise, visibly.
package main

import rego.v1

import data.lib.k8s

expose_label := "capstan.io/expose"

# service-exposure: LoadBalancer and NodePort Services (and externalIPs) need the label
# capstan.io/expose: "true".
deny contains {"rule": "service-exposure", "field": "spec.type", "msg": msg} if {
	input.kind == "Service"
	input.spec.type in {"LoadBalancer", "NodePort"}
	not exposed
	msg := sprintf("%s: type %s exposes it outside the cluster; label it %s: \"true\" if intended", [k8s.name, input.spec.type, expose_label])
}

deny contains {"rule": "service-exposure", "field": "spec.externalIPs", "msg": msg} if {
	input.kind == "Service"
	count(object.get(input.spec, "externalIPs", [])) > 0
	not exposed
	msg := sprintf("%s: externalIPs expose it outside the cluster; label it %s: \"true\" if intended", [k8s.name, expose_label])
}

exposed if input.metadata.labels[expose_label] == "true"
