package dev.wsproxy.benchmark;

import java.util.Arrays;

/**
 * The benchmark jar's entry point: {@code backend}, {@code proxy}, {@code suite} or {@code jmh}. {@code run.sh} next
 * to this module's pom starts them pinned to their cores; see {@code docs/benchmarks.md}.
 */
public final class Main {

    private static final String USAGE = """
            usage: java -jar wsproxy-benchmark.jar COMMAND [options]
              backend --port 19001 [--admin-port 19102]          the echo backend (Jetty core)
              proxy   --port 19002 --backend-port 19001 [--admin-port 19101] [--connect-timeout S] [--ping-interval S]
                                                                 wsproxy in front of it
              suite   --target NAME=ws://127.0.0.1:PORT/[,pid=N][,admin=PORT][,pretouch][,warmup] ...
                      [--workloads %s]
                      [--reps 3] [--duration 10] [--run-warmup 3] [--warmup 30] [--no-jit-settle]
                      [--idle-settle 1]
                      [--source-addresses 127.0.0.2-127.0.0.5] [--connect-concurrency 64]
                      [--max-messages 100000000] [--max-total 1800] [--baseline nginx] [--out runs.tsv]
              jmh     [JMH options]                              the micro-benchmarks (org.openjdk.jmh.Main)
            """.formatted(Workload.DEFAULTS);

    private Main() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.print(USAGE);
            System.exit(2);
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        try {
            switch (args[0]) {
                case "backend" -> backend(new Args(rest));
                case "proxy" -> ProxyMain.main(rest);
                case "suite" -> Suite.run(new Args(rest));
                case "jmh" -> org.openjdk.jmh.Main.main(rest);
                default -> {
                    System.err.print(USAGE);
                    System.exit(2);
                }
            }
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.err.print(USAGE);
            System.exit(2);
        }
    }

    private static void backend(Args options) throws Exception {
        int port = options.intValue("--port", 19001);
        int adminPort = options.intValue("--admin-port", -1);
        options.requireAllUsed();
        EchoBackend backend = EchoBackend.start(port);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                backend.close();
            } catch (Exception e) {
                // Exiting anyway.
            }
        }));
        if (adminPort >= 0) {
            AdminPort.start(adminPort);
        }
        System.out.println("echo backend listening on ws://127.0.0.1:" + backend.port() + "/ (pid "
                + ProcessHandle.current().pid() + ")");
        Thread.currentThread().join();
    }
}
