package dev.wsproxy;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.charset.StandardCharsets;

/**
 * A proxy alone in a JVM of its own, started by {@link ForkedProxy} with a small heap, so that an unbounded
 * buffer ends the process with an OutOfMemoryError instead of passing by luck. Prints {@code listening PORT}, answers
 * {@code heap} with the heap used after a GC, and exits when standard input closes.
 */
public final class ForkedProxyMain {

    private ForkedProxyMain() {
    }

    public static void main(String[] args) throws Exception {
        try (WebSocketProxy proxy = ProxyBuilder.create()
                .listen("127.0.0.1", 0)
                .route("/", Backend.of(args[0]))
                .build()) {
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
                }
            }
        }
    }
}
