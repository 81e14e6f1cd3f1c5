namespace Mobility.Netlab.Topology;

/// <summary>What the harness needs from the machine: root, network namespaces, TUN, iproute2.</summary>
public static class LabRequirements
{
    /// <summary>Null when everything is there, otherwise why the harness cannot run here.</summary>
    public static string? MissingRequirement()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "the network lab needs Linux";
        }

        if (System.Environment.UserName != "root" && !IsRootByUid())
        {
            return "the network lab needs root (network namespaces, TUN devices)";
        }

        if (!File.Exists("/dev/net/tun"))
        {
            return "/dev/net/tun is missing (no TUN support)";
        }

        if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip") && !File.Exists("/bin/ip"))
        {
            return "iproute2 ('ip') is not installed";
        }

        return null;
    }

    /// <summary>Null when the NAT kit can run here (the lab's requirements, nft and conntrack), otherwise why not.</summary>
    public static string? MissingNatRequirement()
    {
        if (MissingRequirement() is { } why)
        {
            return why;
        }

        foreach (var (tool, package) in new[] { ("nft", "nftables"), ("conntrack", "conntrack") })
        {
            if (!new[] { "/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/" }.Any(d => File.Exists(d + tool)))
            {
                return $"'{tool}' is not installed (Debian package {package}): the NAT kit needs it";
            }
        }

        return null;
    }

    public static void CheckRequirements()
    {
        if (MissingRequirement() is { } why)
        {
            throw new PlatformNotSupportedException(why);
        }
    }

    private static bool IsRootByUid()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    return line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[1] == "0";
                }
            }
        }
        catch (IOException)
        {
            return false;
        }

        return false;
    }
}
