/*
 * discard_receiver.c
 *	  An OTLP/HTTP collector that reads and discards, for the export
 *	  benchmarks: the cost measured is the exporter's, not the receiver's.
 *
 * One thread, epoll, non-blocking sockets on 127.0.0.1, HTTP/1.1 with
 * keep-alive: each request's body (Content-Length; libcurl always sends
 * it for the exporter's POSTs) is read into a scratch buffer and dropped,
 * and the request is answered 200 with an empty body (a valid empty
 * Export*ServiceResponse in protobuf; "{}" for a JSON content type).
 * Node's HTTP server (discard_receiver.js) spent ~10 ms per 360 kB
 * request on this machine, more than the exporter spent encoding it; this
 * spends well under one.  gRPC (HTTP/2) stays with discard_receiver.js.
 *
 * Usage: discard_receiver [PORT] (0 or none: an ephemeral port); prints
 * "ready PORT" once it listens, then serves until killed.
 */
#define _GNU_SOURCE				/* accept4 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define SCRATCH (256 * 1024)

/* One client connection */
typedef struct Conn
{
	int			fd;
	char		head[HEAD_MAX];	/* the request head read so far */
	size_t		head_len;
	long long	body_left;		/* body bytes still to discard, or -1 in
								 * the head */
	int			json;			/* the request's content type is JSON */
} Conn;

static char scratch[SCRATCH];

/* Value of header name in a request head, or NULL */
static const char *
header(const char *head, const char *name)
{
	size_t		len = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n"))
	{
		if (strncasecmp(p + 2, name, len) == 0 && p[2 + len] == ':')
			return p + 3 + len;
	}
	return NULL;
}

/* Write the whole answer (small: the socket buffer takes it) */
static int
answer(Conn *c)
{
	static const char proto[] =
		"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
		"Content-Length: 0\r\n\r\n";
	static const char json[] =
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		"Content-Length: 2\r\n\r\n{}";
	const char *r = c->json ? json : proto;
	size_t		len = c->json ? sizeof(json) - 1 : sizeof(proto) - 1;

	return write(c->fd, r, len) == (ssize_t) len ? 0 : -1;
}

/*
 * Consume n bytes of data from the connection: the head, then the body;
 * a complete request is answered.  Returns -1 to close the connection.
 */
static int
consume(Conn *c, const char *data, size_t n)
{
	while (n > 0)
	{
		if (c->body_left < 0)
		{
			size_t		take = n < HEAD_MAX - 1 - c->head_len ? n : HEAD_MAX - 1 - c->head_len;
			char	   *end;
			const char *v;
			size_t		used;

			if (take == 0)
				return -1;		/* a head this long is no exporter's */
			memcpy(c->head + c->head_len, data, take);
			c->head[c->head_len + take] = '\0';
			end = strstr(c->head, "\r\n\r\n");
			if (end == NULL)
			{
				c->head_len += take;
				data += take;
				n -= take;
				continue;
			}
			used = (size_t) (end + 4 - c->head) - c->head_len;
			*end = '\0';
			v = header(c->head, "content-length");
			c->body_left = v ? atoll(v) : 0;
			v = header(c->head, "content-type");
			c->json = v != NULL && strstr(v, "json") != NULL;
			c->head_len = 0;
			data += used;
			n -= used;
		}
		else
		{
			size_t		take = (long long) n < c->body_left ? n : (size_t) c->body_left;

			c->body_left -= take;
			data += take;
			n -= take;
		}
		if (c->body_left == 0)
		{
			if (answer(c) < 0)
				return -1;
			c->body_left = -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	int			port = argc > 1 ? atoi(argv[1]) : 0;
	int			lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int			one = 1;
	struct sockaddr_in addr = {0};
	socklen_t	alen = sizeof(addr);
	int			ep = epoll_create1(0);
	struct epoll_event ev = {0};

	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(port);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) < 0 ||
		listen(lfd, 64) < 0 ||
		getsockname(lfd, (struct sockaddr *) &addr, &alen) < 0)
	{
		perror("discard_receiver");
		return 1;
	}
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	for (;;)
	{
		struct epoll_event events[64];
		int			n = epoll_wait(ep, events, 64, -1);

		if (n < 0 && errno != EINTR)
		{
			perror("discard_receiver: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++)
		{
			Conn	   *c = events[i].data.ptr;
			ssize_t		r;

			if (c == NULL)
			{
				int			fd;

				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
				{
					c = calloc(1, sizeof(Conn));
					c->fd = fd;
					c->body_left = -1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			while ((r = read(c->fd, scratch, sizeof(scratch))) > 0)
			{
				if (consume(c, scratch, (size_t) r) < 0)
				{
					r = 0;
					break;
				}
			}
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			{
				close(c->fd);	/* also leaves the epoll set */
				free(c);
			}
		}
	}
}
