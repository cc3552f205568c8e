# Images pinned: a tag that names a release (or a digest), never `latest` or nothing.
# Written in conftest's classic syntax on purpose: the bundle exercises both Rego syntaxes.
package main

import data.lib.k8s

# image-tag: every container image has a tag other than `latest`, or a digest.
deny[res] {
	c := k8s.containers[_]
	not pinned(c[1].image)
	res := {
		"rule": "image-tag",
		"field": sprintf("%s.image", [c[0]]),
		"msg": sprintf("%s: container %s uses image %s without a pinned tag (no tag or latest)", [k8s.name, c[1].name, c[1].image]),
	}
}

pinned(image) {
	contains(image, "@sha256:")
}

pinned(image) {
	not contains(image, "@")
	tag := image_tag(image)
	tag != ""
	tag != "latest"
}

# The tag is what follows the last ':' after the last '/' (a registry port is not a tag).
image_tag(image) = tag {
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	pieces := split(last, ":")
	tag := pieces[count(pieces) - 1]
}

image_tag(image) = "" {
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}
