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

# `policies.parameters.images.allowed_registries` in .stategate.yaml: when set, every image comes
# from one of these registries (a prefix such as `ghcr.io/acme`); empty allows any registry.
deny_image_registry contains msg if {
	registries := data.stategate_builtin.images.allowed_registries
	count(registries) > 0
	some [field, container] in k8s.containers
	not from_allowed_registry(container.image, registries)
	msg := sprintf("%s %s: %s %s uses image %q from a registry not in %v", [input.kind, k8s.name, field, container.name, container.image, registries])
}

from_allowed_registry(image, registries) if {
	some registry in registries
	startswith(image, concat("", [trim_suffix(registry, "/"), "/"]))
}
