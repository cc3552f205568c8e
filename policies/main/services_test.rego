package main

import rego.v1

service(type, labels) := {
	"apiVersion": "v1",
	"kind": "Service",
	"metadata": {"name": "web", "namespace": "shop", "labels": labels},
	"spec": {"type": type, "ports": [{"port": 80}]},
}

test_service_exposure_allowed if {
	not denied("service-exposure") with input as service("ClusterIP", {})
}

test_service_exposure_labelled_allowed if {
	not denied("service-exposure") with input as service("LoadBalancer", {"capstan.io/expose": "true"})
}

test_service_exposure_denied if {
	denied("service-exposure") with input as service("NodePort", {})
}

test_service_exposure_external_ips_denied if {
	denied("service-exposure") with input as json.patch(service("ClusterIP", {}), [{"op": "add", "path": "/spec/externalIPs", "value": ["1.2.3.4"]}])
}
