using System.Runtime.InteropServices;

namespace Mobility.Netlab.Interop;

/// <summary>
/// Runs code with the calling thread inside a named network namespace (<c>/var/run/netns/NAME</c>).
/// Sockets and TUN devices belong to the namespace they were created in, so a socket created here can be used
/// from any thread afterwards.
/// </summary>
public static class NetworkNamespace
{
    /// <summary>Moves the calling thread into <paramref name="name"/> for good (use on a thread you own).</summary>
    public static void EnterOnCurrentThread(string name)
    {
        using var handle = File.OpenHandle(PathOf(name), FileMode.Open, FileAccess.Read);
        if (Libc.SetNs((int)handle.DangerousGetHandle(), Libc.CloneNewNet) != 0)
        {
            throw new IOException($"setns({name}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Runs <paramref name="action"/> on a fresh thread inside <paramref name="name"/> and returns its result.</summary>
    public static T Run<T>(string name, Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                EnterOnCurrentThread(name);
                result = action();
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        { IsBackground = true, Name = "netns " + name };
        thread.Start();
        if (!thread.Join(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException($"work inside namespace {name} did not finish in 30 s");
        }

        if (error is not null)
        {
            throw new IOException($"in namespace {name}: {error.Message}", error);
        }

        return result!;
    }

    public static string PathOf(string name) => Path.Combine("/var/run/netns", name);

    public static bool Exists(string name) => File.Exists(PathOf(name));
}
