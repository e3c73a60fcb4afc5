/*
 * postback_sink.c: the cheapest HTTP/1.1 endpoint, for
 * test/bench/postbacks.sh.  Its CPU shares the benchmark's machine, while
 * a real affiliate's endpoint runs elsewhere: it does as little as an
 * answer needs, so the benchmark measures the postbacks' cost, not the
 * receiver's.  test/t/postback_receiver.js is the receiver that checks
 * what arrives (signatures included).
 *
 * Usage: postback_sink PORT (0: any free port).  Listens on 127.0.0.1,
 * prints "ready PORT", answers every request "200" with an empty body on
 * keep-alive connections (requests read by their Content-Length; chunked
 * bodies are not supported, the worker does not send them) and counts
 * them: a request for /count is answered with the number answered so far.
 * One thread, poll(); runs until killed.
 */
#define _GNU_SOURCE				/* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* the worker keeps at most 256 connections (fp_attribution.postback_concurrency) */
#define MAX_CONNS 256
#define BUF_SIZE 65536

typedef struct Conn
{
	int			fd;
	size_t		len;			/* bytes in buf */
	char		buf[BUF_SIZE];
} Conn;

static Conn *conns[MAX_CONNS];
static struct pollfd fds[MAX_CONNS + 1];
static unsigned long answered = 0;

/* Length of the first complete request in c->buf, or 0 if incomplete */
static size_t
request_length(Conn *c)
{
	char	   *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
	size_t		head;
	size_t		body = 0;

	if (end == NULL)
		return 0;
	head = end - c->buf + 4;
	for (char *line = c->buf; line < end; line = strstr(line, "\r\n") + 2)
		if (strncasecmp(line, "content-length:", 15) == 0)
			body = strtoul(line + 15, NULL, 10);
	return c->len >= head + body ? head + body : 0;
}

/* Answer every complete request in c's buffer; false to close */
static int
serve(Conn *c)
{
	size_t		n;

	while ((n = request_length(c)) > 0)
	{
		char		answer[128];
		int			alen;

		if (strncmp(c->buf, "GET /count ", 11) == 0)
		{
			char		count[32];
			int			clen = snprintf(count, sizeof(count), "%lu", answered);

			alen = snprintf(answer, sizeof(answer),
							"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", clen, count);
		}
		else
		{
			answered++;
			alen = snprintf(answer, sizeof(answer),
							"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
		}
		/* a short answer into an empty socket buffer is written whole */
		if (write(c->fd, answer, alen) != alen)
			return 0;
		memmove(c->buf, c->buf + n, c->len - n);
		c->len -= n;
	}
	return c->len < BUF_SIZE;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in addr;
	socklen_t	addrlen = sizeof(addr);
	int			one = 1;
	int			lfd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(argc > 1 ? atoi(argv[1]) : 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
		listen(lfd, 128) != 0 ||
		getsockname(lfd, (struct sockaddr *) &addr, &addrlen) != 0)
	{
		perror("postback_sink");
		return 1;
	}
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	fds[MAX_CONNS].fd = lfd;
	fds[MAX_CONNS].events = POLLIN;
	for (int i = 0; i < MAX_CONNS; i++)
		fds[i].fd = -1;
	for (;;)
	{
		if (poll(fds, MAX_CONNS + 1, -1) < 0)
		{
			if (errno == EINTR)
				continue;
			perror("postback_sink: poll");
			return 1;
		}
		if (fds[MAX_CONNS].revents & POLLIN)
		{
			int			fd = accept(lfd, NULL, NULL);
			int			i = 0;

			while (i < MAX_CONNS && conns[i] != NULL)
				i++;
			if (fd >= 0 && i == MAX_CONNS)
				close(fd);
			else if (fd >= 0)
			{
				conns[i] = calloc(1, sizeof(Conn));
				conns[i]->fd = fd;
				fds[i].fd = fd;
				fds[i].events = POLLIN;
			}
		}
		for (int i = 0; i < MAX_CONNS; i++)
		{
			Conn	   *c = conns[i];
			ssize_t		n;

			if (c == NULL || fds[i].revents == 0)
				continue;
			n = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
			if (n > 0)
				c->len += n;
			if (n <= 0 || !serve(c))
			{
				close(c->fd);
				free(c);
				conns[i] = NULL;
				fds[i].fd = -1;
			}
		}
	}
}
