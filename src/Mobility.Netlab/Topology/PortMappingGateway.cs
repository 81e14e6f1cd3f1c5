using System.Diagnostics;
using Mobility.Netlab.Processes;

namespace Mobility.Netlab.Topology;

/// <summary>
/// miniupnpd (Debian's <c>miniupnpd-nftables</c>) in a NAT router of the kit: NAT-PMP and PCP on UDP 5351 of the LAN
/// side with UPnP off, or (<c>upnpOnly</c>) UPnP IGD only: SSDP on UDP 1900 and HTTP on a port miniupnpd picks, NAT-PMP
/// and PCP off (<c>enable_natpmp=no</c>, the option of miniupnpd 2.3 for both); mappings only for the LAN's hosts and
/// ports 1024-65535. It needs the nftables chains it fills: the
/// table <c>inet miniupnpd</c> with <c>miniupnpd</c> (forward accepts), <c>prerouting_miniupnpd</c> (DNAT) and
/// <c>postrouting_miniupnpd</c>, jumped to from base chains just before the kit's own NAT chains. Its configuration and
/// pid file live in the lab's temporary folder, so several labs run it at once; the lab kills it when disposed.
/// </summary>
public static class PortMappingGateway
{
    public const string Executable = "/usr/sbin/miniupnpd";

    /// <summary>Null when miniupnpd is installed, otherwise why a port mapping site cannot be built.</summary>
    public static string? MissingRequirement() =>
        File.Exists(Executable) ? LabRequirements.MissingNatRequirement() : "'miniupnpd' is not installed (Debian package miniupnpd-nftables)";

    private const string Tables = """
        table inet miniupnpd {
          chain forward {
            type filter hook forward priority filter - 1; policy accept;
            jump miniupnpd
          }
          chain miniupnpd {
          }
          chain prerouting {
            type nat hook prerouting priority dstnat - 1; policy accept;
            jump prerouting_miniupnpd
          }
          chain postrouting {
            type nat hook postrouting priority srcnat - 1; policy accept;
            jump postrouting_miniupnpd
          }
          chain prerouting_miniupnpd {
          }
          chain postrouting_miniupnpd {
          }
        }

        """;

    /// <summary>Starts miniupnpd in <paramref name="router"/> for <paramref name="lan"/> and returns once it listens on UDP 5351 (UPnP: UDP 1900).</summary>
    public static async Task<NamespaceProcess> StartAsync(Lab lab, string router, string lan, bool upnpOnly = false)
    {
        ArgumentNullException.ThrowIfNull(lab);
        if (MissingRequirement() is { } missing)
        {
            throw new PlatformNotSupportedException(missing);
        }

        await NatRules.ApplyAsync(router, Tables).ConfigureAwait(false);
        var folder = lab.CreateTemporaryDirectory("miniupnpd");
        var config = Path.Combine(folder, "miniupnpd.conf");
        await File.WriteAllTextAsync(config, $"""
            ext_ifname=wan
            listening_ip=lan
            enable_natpmp={(upnpOnly ? "no" : "yes")}
            enable_upnp={(upnpOnly ? "yes" : "no")}
            http_port=0
            upnp_table_name=miniupnpd
            upnp_nat_table_name=miniupnpd
            secure_mode=yes
            allow 1024-65535 {lan} 1024-65535
            deny 0-65535 0.0.0.0/0 0-65535

            """).ConfigureAwait(false);
        var process = lab.StartProcess(router, Executable, ["-d", "-f", config, "-P", Path.Combine(folder, "miniupnpd.pid")]);
        var deadline = Stopwatch.GetTimestamp() + (10 * Stopwatch.Frequency);
        var port = upnpOnly ? "1900" : "5351";
        while (true)
        {
            var listening = await Ip.ExecAsync(router, "ss", ["-Hlun", $"sport = :{port}"]).ConfigureAwait(false);
            if (listening.Succeeded && listening.StandardOutput.Contains(port, StringComparison.Ordinal))
            {
                return process;
            }

            if (process.HasExited || Stopwatch.GetTimestamp() > deadline)
            {
                throw new CommandFailedException($"miniupnpd in {router} did not start listening on UDP {port}: {process.StandardError.Trim()}");
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }
}
