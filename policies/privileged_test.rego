package main_test

import rego.v1

test_privileged_container_is_denied if {
	c := object.union(good_container, {"securityContext": {"privileged": true}})
	data.main.deny_privileged["Deployment web: containers app is privileged"] with input as deployment(c)
}
