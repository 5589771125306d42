package main_test

import rego.v1

test_latest_tag_is_denied if {
	c := object.union(good_container, {"image": "nginx:latest"})
	count(data.main.deny_image_tag) == 1 with input as deployment(c)
}

test_untagged_image_is_denied if {
	c := object.union(good_container, {"image": "registry.local:5000/nginx"})
	count(data.main.deny_image_tag) == 1 with input as deployment(c)
}

test_digest_is_pinned if {
	c := object.union(good_container, {"image": "nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31"})
	count(data.main.deny_image_tag) == 0 with input as deployment(c)
}

test_cronjob_containers_are_checked if {
	cron := {
		"kind": "CronJob",
		"metadata": {"name": "nightly"},
		"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "busybox"}]}}}}},
	}
	count(data.main.deny_image_tag) == 1 with input as cron
}

test_registries_are_open_without_the_parameter if {
	count(data.main.deny_image_registry) == 0 with input as deployment(good_container)
}

test_an_image_from_another_registry_is_denied if {
	c := object.union(good_container, {"image": "docker.io/nginx:1.27"})
	count(data.main.deny_image_registry) == 1 with input as deployment(c)
		with data.stategate_builtin.images.allowed_registries as ["ghcr.io/acme"]
	count(data.main.deny_image_registry) == 0 with input as deployment(object.union(good_container, {"image": "ghcr.io/acme/web:1"}))
		with data.stategate_builtin.images.allowed_registries as ["ghcr.io/acme/"]
}
