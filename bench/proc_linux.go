package bench

import "syscall"

// procAttr makes the kernel kill a child (broker, redis-server, pipeline)
// if the harness dies without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
