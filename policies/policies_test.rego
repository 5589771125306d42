package main_test


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

test_missing_name_label_is_denied if {
	unlabelled := json.remove(deployment(good_container), ["metadata/labels"])
	data.main.deny_required_labels["Deployment web must have the label app.kubernetes.io/name"] with input as unlabelled
}

test_configmaps_need_no_label if {
	count(data.main.deny_required_labels) == 0 with input as {"kind": "ConfigMap", "metadata": {"name": "c"}}
}

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

test_missing_limits_are_denied if {
	c := object.remove(good_container, ["resources"])
	data.main.deny_resource_limits == {
		"Deployment web: containers app has no cpu limit",
		"Deployment web: containers app has no memory limit",
	} with input as deployment(c)
}

test_privileged_container_is_denied if {
	c := object.union(good_container, {"securityContext": {"privileged": true}})
	data.main.deny_privileged["Deployment web: containers app is privileged"] with input as deployment(c)
}

test_plaintext_secret_is_denied if {
	secret := {"kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "hunter2"}}
	count(data.main.deny_plaintext_secret) == 1 with input as secret
}

test_sops_secret_is_allowed if {
	secret := {"kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "ENC[AES256_GCM,data:x]"}, "sops": {"version": "3.8.1"}}
	count(data.main.deny_plaintext_secret) == 0 with input as secret
}
