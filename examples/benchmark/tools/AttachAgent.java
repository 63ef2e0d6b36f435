import com.sun.tools.attach.VirtualMachine;

/**
 * Loads a native agent into a running JVM: {@code java AttachAgent.java PID LIBRARY OPTIONS}. Used by
 * {@code profile.sh} to start and stop async-profiler in the proxy under load (launched as a single source file,
 * not part of the benchmark jar).
 */
public final class AttachAgent {

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: java AttachAgent.java PID LIBRARY OPTIONS");
            System.exit(2);
        }
        VirtualMachine vm = VirtualMachine.attach(args[0]);
        try {
            vm.loadAgentPath(args[1], args[2]);
        } finally {
            vm.detach();
        }
    }
}
