/*
 * quai's hello-world: the program inside the image `hello-world`, embedded
 * in the quai binary. No libc: two raw system calls (write, exit), so the
 * static binary is a few KiB and runs on any Linux kernel.
 */

static const char message[] =
    "\n"
    "Hello from quai!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "\n"
    "To generate this message, quai took these steps:\n"
    " 1. The quai command found the image \"hello-world\" in its local store\n"
    "    (it is built into quai, so nothing was downloaded).\n"
    " 2. quai stacked the image's layers with overlayfs into a root file system\n"
    "    for a new container.\n"
    " 3. quai's runtime created the container: new namespaces, cgroups, dropped\n"
    "    capabilities and a seccomp filter, then ran this program in it.\n"
    " 4. quai streamed the program's output to your terminal.\n"
    "\n"
    "To try something more ambitious, load an image and run a shell in it:\n"
    " $ docker save busybox | quai load\n"
    " $ quai run -it busybox sh\n"
    "\n"
    "Everything quai does is described in its README.\n"
    "\n";

#if defined(__x86_64__)
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}
#define SYS_WRITE 1
#define SYS_EXIT_GROUP 231
#elif defined(__aarch64__)
static long sys3(long n, long a, long b, long c)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}
#define SYS_WRITE 64
#define SYS_EXIT_GROUP 94
#else
#error "hello-world: unsupported architecture"
#endif

void _start(void)
{
	const char *p = message;
	long left = sizeof(message) - 1;
	int status = 0;
	while (left > 0) {
		long n = sys3(SYS_WRITE, 1, (long)p, left);
		if (n == -4) /* EINTR */
			continue;
		if (n <= 0) {
			status = 1;
			break;
		}
		p += n;
		left -= n;
	}
	sys3(SYS_EXIT_GROUP, status, 0, 0);
	for (;;)
		;
}
