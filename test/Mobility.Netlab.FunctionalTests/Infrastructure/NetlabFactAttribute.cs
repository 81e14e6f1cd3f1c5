using Mobility.Netlab.Topology;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Mobility.Netlab.FunctionalTests.Infrastructure;

/// <summary>A test that needs root, network namespaces and /dev/net/tun; skipped with the reason elsewhere.</summary>
public sealed class NetlabFactAttribute : FactAttribute
{
    public NetlabFactAttribute()
    {
        if (LabRequirements.MissingRequirement() is { } why)
        {
            Skip = "network lab unavailable: " + why;
        }
    }
}

/// <summary>A theory that needs what <see cref="NetlabFactAttribute"/> needs; skipped with the reason elsewhere.</summary>
public sealed class NetlabTheoryAttribute : TheoryAttribute
{
    public NetlabTheoryAttribute()
    {
        if (LabRequirements.MissingRequirement() is { } why)
        {
            Skip = "network lab unavailable: " + why;
        }
    }
}

/// <summary>A test of the NAT kit: a <see cref="NetlabFactAttribute"/> that also needs nft and conntrack.</summary>
public sealed class NatKitFactAttribute : FactAttribute
{
    public NatKitFactAttribute()
    {
        if (LabRequirements.MissingNatRequirement() is { } why)
        {
            Skip = "NAT kit unavailable: " + why;
        }
    }
}

/// <summary>A theory of the NAT kit: what <see cref="NatKitFactAttribute"/> needs; skipped with the reason elsewhere.</summary>
public sealed class NatKitTheoryAttribute : TheoryAttribute
{
    public NatKitTheoryAttribute()
    {
        if (LabRequirements.MissingNatRequirement() is { } why)
        {
            Skip = "NAT kit unavailable: " + why;
        }
    }
}

/// <summary>Removes leftovers of killed runs once, before the first namespace test.</summary>
public sealed class LeftoverCleanup
{
    public LeftoverCleanup()
    {
        if (LabRequirements.MissingRequirement() is null)
        {
            LabCleanup.RunAsync().WithTimeout(NetlabTimeouts.Step).GetAwaiter().GetResult();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class NetlabCollection : ICollectionFixture<LeftoverCleanup>
{
    public const string Name = "netlab";
}

internal static class NetlabTimeouts
{
    /// <summary>Three times the default: two loaded cores, and each step builds namespaces and spawns processes.</summary>
    public static readonly TimeSpan Step = TestTimeout.Default * 3;
}

/// <summary>A fact that needs the NAT kit and miniupnpd (a NAT router that maps ports); skipped with the reason otherwise.</summary>
public sealed class PortMappingFactAttribute : FactAttribute
{
    public PortMappingFactAttribute()
    {
        if (PortMappingGateway.MissingRequirement() is { } why)
        {
            Skip = "port mapping gateway unavailable: " + why;
        }
    }
}
