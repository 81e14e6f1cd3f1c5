namespace Mobility.Daemon.FunctionalTests.Infrastructure;

/// <summary>A test that needs keyutils (keyctl and the kernel's request-key upcall) and root (to install the handler line).</summary>
public sealed class KeyutilsFactAttribute : FactAttribute
{
    public KeyutilsFactAttribute()
    {
        if (!Tool.Exists("keyctl") || !File.Exists("/sbin/request-key"))
        {
            Skip = "keyutils is not installed (apt-get install -y keyutils): the kernel upcall cannot be tested.";
        }
        else if (!Tool.IsRoot)
        {
            Skip = "installing /etc/request-key.d/mobility.conf needs root.";
        }
    }
}

/// <summary>A test that runs a client as another user (needs root, setpriv and curl).</summary>
public sealed class OtherUserFactAttribute : FactAttribute
{
    public OtherUserFactAttribute()
    {
        if (!Tool.IsRoot || !Tool.Exists("setpriv") || !Tool.Exists("curl"))
        {
            Skip = "needs root, setpriv and curl to connect as user nobody.";
        }
    }
}
