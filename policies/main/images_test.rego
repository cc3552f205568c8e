package main

import rego.v1

test_image_tag_allowed if {
	not denied("image-tag") with input as good_deployment
}

test_image_tag_digest_allowed if {
	not denied("image-tag") with input as deployment_with([{"op": "replace", "path": concat("", [container_path, "/image"]), "value": "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}])
}

test_image_tag_registry_port_is_not_a_tag if {
	denied("image-tag") with input as deployment_with([{"op": "replace", "path": concat("", [container_path, "/image"]), "value": "registry.local:5000/web"}])
}

test_image_tag_denied if {
	denied("image-tag") with input as deployment_with([{"op": "replace", "path": concat("", [container_path, "/image"]), "value": "nginx"}])
}

test_image_tag_latest_denied if {
	denied("image-tag") with input as deployment_with([{"op": "replace", "path": concat("", [container_path, "/image"]), "value": "nginx:latest"}])
}
