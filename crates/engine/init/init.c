/*
 * quai-init: the container's pid 1 with `quai run --init` (docker's
 * /sbin/docker-init). It starts the program given after `--`, forwards
 * every signal it receives to it, reaps every zombie reparented to it,
 * and exits with the program's status (128 + signal when it was killed).
 *
 * No libc: a static program of raw system calls, so it runs in any image.
 */

typedef unsigned long u64;

#if defined(__x86_64__)
#define NR_write 1
#define NR_rt_sigprocmask 14
#define NR_clone 56
#define NR_execve 59
#define NR_wait4 61
#define NR_kill 62
#define NR_rt_sigtimedwait 128
#define NR_exit_group 231
static long sys6(long n, long a, long b, long c, long d, long e)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}
__asm__(".global _start\n"
	"_start:\n"
	"  xor %rbp, %rbp\n"
	"  mov %rsp, %rdi\n"
	"  and $-16, %rsp\n"
	"  call start_c\n"
	"  hlt\n");
#elif defined(__aarch64__)
#define NR_write 64
#define NR_rt_sigprocmask 135
#define NR_clone 220
#define NR_execve 221
#define NR_wait4 260
#define NR_kill 129
#define NR_rt_sigtimedwait 137
#define NR_exit_group 94
static long sys6(long n, long a, long b, long c, long d, long e)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
			 : "memory");
	return x0;
}
__asm__(".global _start\n"
	"_start:\n"
	"  mov x0, sp\n"
	"  bl start_c\n"
	"  brk #0\n");
#else
#error "quai-init: unsupported architecture"
#endif

#define SIGCHLD 17
#define SIG_BLOCK 0
#define SIG_SETMASK 2
#define WNOHANG 1
#define ENOENT 2
#define EINTR 4
#define EAGAIN 11
#define ECHILD 10

static void exit_now(int status)
{
	sys6(NR_exit_group, status, 0, 0, 0, 0);
	for (;;)
		;
}

static unsigned long len(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static void say(const char *s)
{
	sys6(NR_write, 2, (long)s, len(s), 0, 0);
}

static int starts_with(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return 1;
}

static int has_slash(const char *s)
{
	for (; *s; s++)
		if (*s == '/')
			return 1;
	return 0;
}

/* Runs argv[0] like execvp: a name without '/' is searched in PATH. */
static void run(char **argv, char **envp)
{
	static char buf[4096];
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	const char *name = argv[0];
	long err = -ENOENT;
	if (has_slash(name)) {
		err = sys6(NR_execve, (long)name, (long)argv, (long)envp, 0, 0);
	} else {
		for (char **e = envp; *e; e++)
			if (starts_with(*e, "PATH="))
				path = *e + 5;
		unsigned long n = len(name);
		while (1) {
			const char *end = path;
			while (*end && *end != ':')
				end++;
			unsigned long dir = end - path;
			if (dir + n + 2 < sizeof(buf)) {
				unsigned long i = 0;
				for (; i < dir; i++)
					buf[i] = path[i];
				if (dir == 0)
					buf[i++] = '.';
				buf[i++] = '/';
				for (unsigned long j = 0; j <= n; j++)
					buf[i + j] = name[j];
				long r = sys6(NR_execve, (long)buf, (long)argv, (long)envp, 0, 0);
				if (r != -ENOENT)
					err = r;
			}
			if (!*end)
				break;
			path = end + 1;
		}
	}
	say("quai-init: exec ");
	say(name);
	say(err == -ENOENT ? ": executable file not found\n" : ": permission denied or not executable\n");
	exit_now(err == -ENOENT ? 127 : 126);
}

void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	int first = 1;
	if (argc > 1 && argv[1][0] == '-' && argv[1][1] == '-' && argv[1][2] == 0)
		first = 2;
	if (argc <= first) {
		say("usage: quai-init -- PROGRAM [ARG...]\n");
		exit_now(2);
	}
	u64 all = ~0UL, none = 0;
	sys6(NR_rt_sigprocmask, SIG_BLOCK, (long)&all, 0, 8, 0);
	long child = sys6(NR_clone, SIGCHLD, 0, 0, 0, 0);
	if (child < 0) {
		say("quai-init: cannot fork\n");
		exit_now(1);
	}
	if (child == 0) {
		sys6(NR_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8, 0);
		run(argv + first, envp);
	}
	int status = 0;
	for (;;) {
		/* siginfo_t is 128 bytes */
		long info[16];
		long sig = sys6(NR_rt_sigtimedwait, (long)&all, (long)info, 0, 8, 0);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			sys6(NR_kill, child, sig, 0, 0, 0);
			continue;
		}
		for (;;) {
			int st = 0;
			long pid = sys6(NR_wait4, -1, (long)&st, WNOHANG, 0, 0);
			if (pid <= 0)
				break;
			if (pid == child) {
				if ((st & 0x7f) == 0)
					status = (st >> 8) & 0xff;
				else
					status = 128 + (st & 0x7f);
				/* The program is gone: collect what is left, then exit. */
				while (sys6(NR_wait4, -1, (long)&st, WNOHANG, 0, 0) > 0)
					;
				exit_now(status);
			}
		}
	}
}
