package dev.wsproxy.benchmark;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/**
 * A loopback line protocol that lets the generator read a JVM's heap after a full GC, without touching the process
 * under test while it relays. Three commands: {@code heap}, answered with {@code heapUsed=BYTES}; {@code alloc},
 * answered with {@code allocated=BYTES}: the bytes allocated so far by the JVM's live threads
 * ({@code com.sun.management.ThreadMXBean#getThreadAllocatedBytes}; threads that ended take theirs with them); and
 * {@code jit}, answered with {@code jitMillis=MS}: the JIT compilers' total time so far, which tells a measured window
 * that still compiles (its CPU includes the compilers') from a steady one.
 *
 * <p>Costs one blocked daemon thread and nothing per connection; {@code jcmd PID GC.run} followed by
 * {@code jcmd PID GC.heap_info} gives the same figure by hand.
 */
final class AdminPort {

    private AdminPort() {
    }

    /** Listens on {@code 127.0.0.1:port} on a daemon thread; returns the bound port. */
    static int start(int port) throws IOException {
        ServerSocket server = new ServerSocket();
        server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
        Thread thread = new Thread(() -> serve(server), "admin-port");
        thread.setDaemon(true);
        thread.start();
        return server.getLocalPort();
    }

    private static void serve(ServerSocket server) {
        while (!server.isClosed()) {
            try (Socket socket = server.accept()) {
                socket.setSoTimeout(30_000);
                BufferedReader in = new BufferedReader(
                        new InputStreamReader(socket.getInputStream(), StandardCharsets.US_ASCII));
                OutputStream out = socket.getOutputStream();
                String command = in.readLine();
                String answer = "heap".equals(command) ? "heapUsed=" + heapAfterGc()
                        : "alloc".equals(command) ? "allocated=" + allocatedBytes()
                        : "jit".equals(command) ? "jitMillis=" + jitMillis() : "unknown command";
                out.write((answer + "\n").getBytes(StandardCharsets.US_ASCII));
                out.flush();
            } catch (IOException e) {
                // One failed exchange; keep serving.
            }
        }
    }

    /** Heap in use after two full collections (the second catches what finalization or references freed). */
    static long heapAfterGc() {
        System.gc();
        System.gc();
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    /** The JIT compilers' accumulated time, in milliseconds; -1 when the JVM cannot tell. */
    static long jitMillis() {
        CompilationMXBean compiler = ManagementFactory.getCompilationMXBean();
        return compiler != null && compiler.isCompilationTimeMonitoringSupported()
                ? compiler.getTotalCompilationTime() : -1;
    }

    /** Bytes allocated by the live threads so far; -1 when the JVM cannot tell. */
    static long allocatedBytes() {
        if (!(ManagementFactory.getThreadMXBean() instanceof com.sun.management.ThreadMXBean threads)
                || !threads.isThreadAllocatedMemorySupported() || !threads.isThreadAllocatedMemoryEnabled()) {
            return -1;
        }
        long total = 0;
        for (long bytes : threads.getThreadAllocatedBytes(threads.getAllThreadIds())) {
            if (bytes > 0) {
                total += bytes;
            }
        }
        return total;
    }

    /** One of the questions below. */
    @FunctionalInterface
    interface Query {
        long ask(String host, int port) throws IOException;
    }

    /** Asks the admin port at {@code host:port} for the heap after GC. */
    static long queryHeap(String host, int port) throws IOException {
        return query(host, port, "heap", "heapUsed=");
    }

    /** Asks the admin port at {@code host:port} for the bytes its live threads have allocated. */
    static long queryAllocated(String host, int port) throws IOException {
        return query(host, port, "alloc", "allocated=");
    }

    /** Asks the admin port at {@code host:port} for its JIT compilers' total time, in milliseconds. */
    static long queryJitMillis(String host, int port) throws IOException {
        return query(host, port, "jit", "jitMillis=");
    }

    private static long query(String host, int port, String command, String prefix) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), 5_000);
            socket.setSoTimeout(60_000);
            socket.getOutputStream().write((command + "\n").getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().flush();
            String line = new BufferedReader(
                    new InputStreamReader(socket.getInputStream(), StandardCharsets.US_ASCII)).readLine();
            if (line == null || !line.startsWith(prefix)) {
                throw new IOException("admin port " + host + ":" + port + " answered " + line);
            }
            return Long.parseLong(line.substring(prefix.length()));
        }
    }
}
