package dev.wsproxy;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

import javax.management.ObjectName;

/**
 * A proxy alone in a JVM of its own, started by {@link ForkedProxy} with a small heap, so that an unbounded
 * buffer ends the process with an OutOfMemoryError instead of passing by luck. Prints {@code listening PORT}, answers
 * {@code heap} with the heap used after a GC and {@code allocated} with the bytes its live threads have allocated so
 * far, and exits when standard input closes, stopping the proxy.
 *
 * <p>Arguments: the backend of the route {@code /}, then any of these settings: {@code route=PREFIX=URI} (one more
 * route), {@code connectTimeout=DURATION} (the backend connect timeout), {@code handshakeTimeout=DURATION}, the
 * durations in ISO-8601 ({@code PT0.5S}), {@code trustedProxies=CIDR}, {@code originRoute=PREFIX} (a route to the
 * backend that allows the origin {@code https://app.example} only) and {@code authRoute=PREFIX} (a route to the
 * backend whose authenticator refuses with {@code 401} unless {@code Authorization} is {@code Bearer open-sesame}) and
 * {@code nextHandlerRoute=PREFIX} (a route to the backend that passes plain HTTP to the next handler, of which there is
 * none: {@code 404}).
 */
public final class ForkedProxyMain {

    private ForkedProxyMain() {
    }

    public static void main(String[] args) throws Exception {
        ProxyBuilder builder = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/", Backend.of(args[0]));
        for (int i = 1; i < args.length; i++) {
            apply(builder, Backend.of(args[0]), args[i]);
        }
        try (WebSocketProxy proxy = builder.build()) {
            System.out.println("listening " + proxy.start().getPort());
            System.out.flush();
            BufferedReader commands = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String command;
            while ((command = commands.readLine()) != null) {
                if (command.equals("heap")) {
                    System.gc();
                    MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
                    System.out.println("heap " + heap.getUsed());
                    System.out.flush();
                } else if (command.equals("allocated")) {
                    System.out.println("allocated " + allocatedByLiveThreads());
                    System.out.flush();
                }
            }
        }
    }

    /**
     * The sum of {@code com.sun.management.ThreadMXBean.getThreadAllocatedBytes} over the live threads, asked through
     * the platform MBean server: the test module does not read {@code jdk.management}. A thread that ended is not
     * counted, so a difference of two sums can only be too small by what such a thread allocated.
     */
    private static long allocatedByLiveThreads() throws Exception {
        long[] ids = ManagementFactory.getThreadMXBean().getAllThreadIds();
        long[] each = (long[]) ManagementFactory.getPlatformMBeanServer().invoke(
                new ObjectName(ManagementFactory.THREAD_MXBEAN_NAME), "getThreadAllocatedBytes",
                new Object[] {ids}, new String[] {long[].class.getName()});
        long total = 0;
        for (long bytes : each) {
            total += Math.max(0, bytes); // -1 for a thread that ended meanwhile
        }
        return total;
    }

    private static void apply(ProxyBuilder builder, Backend backend, String setting) {
        String[] nameValue = setting.split("=", 2);
        switch (nameValue[0]) {
            case "route" -> {
                String[] prefixUri = nameValue[1].split("=", 2);
                builder.route(prefixUri[0], Backend.of(prefixUri[1]));
            }
            case "connectTimeout" -> builder.timeoutPolicy(
                    TimeoutPolicy.custom().connect(Duration.parse(nameValue[1])).build());
            case "handshakeTimeout" -> builder.handshakeTimeout(Duration.parse(nameValue[1]));
            case "trustedProxies" -> builder.trustedProxies(nameValue[1]);
            case "originRoute" -> builder.route(nameValue[1], r -> r.backends(backend)
                    .originValidator(OriginValidator.allowList("https://app.example")));
            case "authRoute" -> builder.route(nameValue[1], r -> r.backends(backend).authenticator(Authenticator.of(
                    request -> "Bearer open-sesame".equals(request.header("Authorization"))
                            ? AuthDecision.allow() : AuthDecision.reject(401))));
            case "nextHandlerRoute" -> builder.route(nameValue[1], r -> r.backends(backend)
                    .plainHttp(PlainHttp.NEXT_HANDLER));
            default -> throw new IllegalArgumentException("setting: " + setting + " (expected: route=PREFIX=URI, "
                    + "connectTimeout=DURATION, handshakeTimeout=DURATION, trustedProxies=CIDR, originRoute=PREFIX, "
                    + "authRoute=PREFIX or nextHandlerRoute=PREFIX)");
        }
    }
}
