# Images are pinned: a tag other than `latest`, or a digest. `:latest` and untagged images change
# under a running cluster without any change in Git.
package main

import data.lib.k8s
import rego.v1

deny_image_tag contains msg if {
	some [field, container] in k8s.containers
	not pinned(container.image)
	msg := sprintf("%s %s: %s %s uses image %q without a fixed tag (not :latest, not untagged)", [input.kind, k8s.name, field, container.name, container.image])
}

pinned(image) if contains(image, "@sha256:")

pinned(image) if {
	not contains(image, "@")
	tag := image_tag(image)
	tag != "latest"
}

# The tag is what follows the last `:` after the last `/` (a registry port is not a tag).
image_tag(image) := tag if {
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}
