package main

import rego.v1

test_container_resources_allowed if {
	not denied("container-resources") with input as good_deployment
}

test_container_resources_denied if {
	denied("container-resources") with input as deployment_with([{"op": "remove", "path": concat("", [container_path, "/resources/limits/memory"])}])
}

test_container_cpu_limit_allowed if {
	not warned("container-cpu-limit") with input as good_deployment
}

test_container_cpu_limit_warned if {
	warned("container-cpu-limit") with input as deployment_with([{"op": "remove", "path": concat("", [container_path, "/resources/limits/cpu"])}])
}
