package main_test

# Shared fixtures of the built-in policies' tests, and the test that a good workload passes all.


import rego.v1

deployment(container) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
	"spec": {"template": {"spec": {"containers": [container]}}},
}

good_container := {
	"name": "app",
	"image": "ghcr.io/acme/web:1.4.2",
	"resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
}

test_a_good_deployment_passes if {
	count(data.main.deny_required_labels) == 0 with input as deployment(good_container)
	count(data.main.deny_image_tag) == 0 with input as deployment(good_container)
	count(data.main.deny_resource_limits) == 0 with input as deployment(good_container)
	count(data.main.deny_privileged) == 0 with input as deployment(good_container)
}
