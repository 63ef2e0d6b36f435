package dev.wsproxy.benchmark;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

class ProcStatsTest {

    @Test
    void parsesCpuTicksAfterACommandNameWithSpacesAndParentheses() {
        String stat = "4242 (java (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 567 0 0 20 0 40 0 100 0 0";

        assertThat(ProcStats.cpuTicks(stat)).isEqualTo(1234 + 567);
        assertThat(ProcStats.parentPid(stat)).isEqualTo(1);
    }

    @Test
    void readsNumericStatusFields() {
        String status = "Name:\tjava\nVmRSS:\t  123456 kB\nThreads:\t42\n";

        assertThat(ProcStats.statusField(status, "VmRSS:")).isEqualTo(123456);
        assertThat(ProcStats.statusField(status, "Threads:")).isEqualTo(42);
        assertThat(ProcStats.statusField(status, "VmSwap:")).isZero();
    }

    @Test
    void samplesThisProcess() {
        assumeTrue(ProcStats.available(), "Linux /proc");

        ProcStats.Sample sample = ProcStats.sample(ProcessHandle.current().pid());

        assertThat(sample.cpuNanos()).isPositive();
        assertThat(sample.rssBytes()).isPositive();
        assertThat(sample.threads()).isPositive();
        assertThat(sample.contextSwitches()).isPositive();
    }

    @Test
    void readsVoluntaryAndInvoluntarySwitchesApart() {
        String status = "Name:\tjava\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t3\n";

        assertThat(ProcStats.statusField(status, "\nvoluntary_ctxt_switches:")).isEqualTo(7);
        assertThat(ProcStats.statusField(status, "nonvoluntary_ctxt_switches:")).isEqualTo(3);
    }
}
