//! The state store's protocol under concurrency, as the real code runs it: launchers (`run -d`,
//! `create`) making a record and claiming a name, the monitor each forks, `start`, `rm` and
//! `rm -f`, and the environment: a launcher or a monitor killed with SIGKILL at any step, and
//! other processes taking freed pids (pid reuse). Every interleaving of their atomic steps is
//! explored; each step is one system call or one file operation of the code named beside it.
//!
//! Invariants (checked in every reachable state):
//! - a signal only ever reaches the sandbox's own process (pid reuse);
//! - `rm` never removes the record of a sandbox whose monitor or init is alive;
//! - a name maps to at most one live sandbox: a live sandbox that claimed the name is the one
//!   the name link points to;
//! - nothing is out of reach: once every caller is done, every sandbox with a live process or
//!   a cgroup has a record (so `ps` shows it and `rm -f` collects it);
//! - a created sandbox's workload is released at most once (no double start);
//!
//! and one liveness property: after a janitor's `rm -f` of every listed sandbox and `gc`,
//! nothing is left (records, cgroups, processes, the name link, half-made directories).

use stateright::{Model, Property};

/// Pids in the model (a small table, so that freed pids are reused).
pub const PIDS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Free,
    /// A caller's own process (the launcher is the record's first monitor).
    Caller(u8),
    Monitor(u8),
    Init(u8),
    /// Anything else on the host that got a freed pid.
    Other,
}

/// A process as the record names it: pid and start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PRef {
    pub pid: u8,
    pub start: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
}

/// `state.json` (the fields the protocol reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub status: Status,
    pub monitor: PRef,
    pub init: Option<PRef>,
}

/// The sandbox's directory under the state root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Absent,
    /// `.tmp.ID.PID.START`, being filled by its maker (`Store::create`).
    Tmp(PRef),
    /// `ID/` with its record.
    Published(Record),
    /// `ID/` with its files removed, the directory itself not yet (`Store::remove`).
    Emptied,
}

/// Where a sandbox's monitor is (`monitor_main`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mon {
    NotForked,
    /// Forked; its first act is writing its own pid into the record (`Tracker::save`).
    Save,
    /// Holding the sandbox's directory lock for that first write (the fixed protocol).
    SaveLocked,
    /// Making the cgroup and cloning init (`run_detached`).
    Clone,
    /// Writing the record `running`/`created` and reporting `ok` to the launcher.
    Ready,
    /// Supervising: waits for init to exit (and, when created, for `start`).
    Up,
    /// `--restart`: init exited, the policy wants it again; after the back-off the monitor
    /// checks the stop mark and clones a new init.
    Backoff,
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sandbox {
    pub dir: Dir,
    pub cgroup: bool,
    pub mon: Mon,
    pub monitor: Option<PRef>,
    pub init: Option<PRef>,
    /// `create` (held until `start`) rather than `run -d`.
    pub held: bool,
    /// Its launcher's name claim succeeded.
    pub named: bool,
    /// The monitor reported `ok` to the launcher.
    pub reported: bool,
    /// Times its workload was released.
    pub starts: u8,
    /// Restarts its `--restart` policy still allows.
    pub restarts_left: u8,
    /// `stopping` in its directory (`stop` and `rm -f` leave it before they signal).
    pub stop_mark: bool,
    /// Paused (cgroup v1's freezer): its processes act on no signal until thawed.
    pub frozen: bool,
    /// A SIGKILL its frozen init has pending (the parent-death signal, a kill).
    pub doomed: bool,
    /// `paused` in its directory (written by `pause` after the freeze).
    pub paused_mark: bool,
    /// Its health (`--health-cmd`) and the check in flight.
    pub healthy: bool,
    pub check: Check,
    /// Its health when it was frozen.
    pub healthy_at_pause: bool,
}

/// A health check's progress: spawned by the monitor (`nucleus exec ID -- sh -c CMD`), run
/// (refused when the sandbox is paused), collected by the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    Idle,
    Spawned,
    Ran { ok: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `run -d --name n` (`held: false`) or `create --name n` of sandbox `sb`.
    Launch {
        sb: u8,
        held: bool,
    },
    Start,
    /// `stop`: the stop mark, SIGTERM, wait for the monitor, SIGKILL after the timeout.
    Stop,
    /// `pause`: under the sandbox's lock, a running sandbox is frozen.
    Pause,
    /// `rm` (`force: false`) or `rm -f`.
    Rm {
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    Begin,
    // Launch (launcher.rs, Store::create, Store::claim_name)
    Rename,
    Symlink,
    NamesLocked,
    RemoveOwn,
    Fork,
    Wait,
    // rm (rm.rs rm_one)
    Lock,
    Reread,
    Settle,
    Kill,
    WaitMonitor,
    Remove,
    RemoveLink,
    RemoveDir,
    // start
    Send,
    // stop (stop.rs stop_one)
    Mark,
    Term,
    StopWait,
    StopKill,
    StopKilledWait,
    Done,
    Failed,
    Killed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    pub verb: Verb,
    pub pc: Pc,
    pub me: PRef,
    /// The sandbox `rm`/`start`/`stop` acts on.
    pub target: Option<u8>,
    /// The init `stop` read first.
    pub seen_init: Option<PRef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locker {
    Caller(u8),
    Monitor(u8),
}

/// Violations seen on a transition (kept in the state so a property can name them).
pub const WRONG_SIGNAL: u8 = 1;
pub const REMOVED_LIVE: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    pub procs: [(Owner, u8); PIDS],
    pub gen: u8,
    pub sandboxes: Vec<Sandbox>,
    pub callers: Vec<Caller>,
    /// `names/n` (one name, wanted by every launcher).
    pub link: Option<u8>,
    pub names_lock: Option<u8>,
    pub dir_locks: Vec<Option<Locker>>,
    pub kills_left: u8,
    pub others_left: u8,
    pub bad: u8,
    /// The configuration's protocol (see [`StoreModel::locked_first_save`]).
    pub locked_first_save: bool,
}

impl World {
    pub fn alive(&self, p: PRef) -> bool {
        let (o, s) = self.procs[p.pid as usize];
        o != Owner::Free && s == p.start
    }
    fn spawn(&mut self, owner: Owner) -> Option<PRef> {
        let pid = self.procs.iter().position(|(o, _)| *o == Owner::Free)?;
        self.gen += 1;
        self.procs[pid] = (owner, self.gen);
        Some(PRef {
            pid: pid as u8,
            start: self.gen,
        })
    }
    fn exit(&mut self, p: Option<PRef>) {
        if let Some(p) = p.filter(|p| self.alive(*p)) {
            self.procs[p.pid as usize].0 = Owner::Free;
        }
    }
    /// SIGKILL to a sandbox's init: it dies, or, frozen, keeps it pending until thawed.
    fn kill_init(&mut self, sb: usize) {
        if self.sandboxes[sb].frozen {
            self.sandboxes[sb].doomed = true;
        } else {
            let i = self.sandboxes[sb].init;
            self.exit(i);
        }
    }
    fn thaw(&mut self, sb: usize) {
        self.sandboxes[sb].frozen = false;
        self.sandboxes[sb].paused_mark = false;
        if std::mem::take(&mut self.sandboxes[sb].doomed) {
            let i = self.sandboxes[sb].init;
            self.exit(i);
        }
    }
    /// A monitor dies: its init follows (parent-death signal), the record stays.
    fn monitor_dies(&mut self, sb: usize) {
        let m = self.sandboxes[sb].monitor;
        self.exit(m);
        self.kill_init(sb);
        self.sandboxes[sb].mon = Mon::Gone;
        self.release_locks(Locker::Monitor(sb as u8));
    }
    fn release_locks(&mut self, who: Locker) {
        for l in self.dir_locks.iter_mut() {
            if *l == Some(who) {
                *l = None;
            }
        }
        if let Locker::Caller(c) = who {
            if self.names_lock == Some(c) {
                self.names_lock = None;
            }
        }
    }
    fn record(&self, sb: usize) -> Option<Record> {
        match self.sandboxes[sb].dir {
            Dir::Published(r) => Some(r),
            _ => None,
        }
    }
    /// `Store::write`: only into a published directory (else the write fails).
    fn write(&mut self, sb: usize, f: impl FnOnce(&mut Record)) -> bool {
        match &mut self.sandboxes[sb].dir {
            Dir::Published(r) => {
                f(r);
                true
            }
            _ => false,
        }
    }
    fn dir_exists(&self, sb: usize) -> bool {
        matches!(self.sandboxes[sb].dir, Dir::Published(_) | Dir::Emptied)
    }
    /// `effective()`: a record whose monitor is dead reads as stopped.
    fn effective(&self, r: Record) -> Status {
        if r.status == Status::Stopped || self.alive(r.monitor) {
            r.status
        } else {
            Status::Stopped
        }
    }
    /// The sandbox runs, or its monitor has committed to running it (its first record write
    /// is done: from there it makes the cgroup and init). A monitor still before that write
    /// stops by itself when it finds the record gone (the fixed protocol).
    fn live(&self, sb: usize) -> bool {
        let s = &self.sandboxes[sb];
        let committed = matches!(s.mon, Mon::Clone | Mon::Ready | Mon::Up)
            || (s.mon == Mon::Save && !self.locked_first_save);
        (committed && s.monitor.is_some_and(|p| self.alive(p)))
            || s.init.is_some_and(|p| self.alive(p))
    }
    /// `rm`'s and the janitor's removal is about to take this record.
    fn removing(&mut self, sb: usize) {
        if self.live(sb) {
            self.bad |= REMOVED_LIVE;
        }
    }
    fn monitor_alive(&self, sb: usize) -> bool {
        self.sandboxes[sb].monitor.is_some_and(|p| self.alive(p))
    }
    fn callers_done(&self) -> bool {
        self.callers
            .iter()
            .all(|c| matches!(c.pc, Pc::Done | Pc::Failed | Pc::Killed))
    }
}

/// One configuration: who runs concurrently, and which protocol the monitor follows.
#[derive(Clone, Debug)]
pub struct StoreModel {
    pub verbs: Vec<Verb>,
    /// SIGKILLs of launchers or monitors the environment may send.
    pub kills: u8,
    /// Processes the environment may start on freed pids.
    pub others: u8,
    /// The monitor's first record write takes the directory lock and stops when the record is
    /// gone (the fix); false: the write is unchecked, as before it.
    pub locked_first_save: bool,
    /// A launcher whose name link vanished between its failed symlink and its look retries
    /// (the fix); false: it fails, as before it.
    pub retry_vanished_name: bool,
    /// `--restart` allows this many restarts of each sandbox.
    pub restarts: u8,
    /// `stop` signals what the record names now at each step of its wait (the fix); false: it
    /// signals the init it read first, once, as before.
    pub stop_rereads: bool,
    /// Removing a sandbox's cgroups thaws a frozen one first (the fix): its init's pending
    /// SIGKILL then ends it. False: as before, a sandbox lost while paused stays frozen.
    pub thaw_on_remove: bool,
    /// Health checks run (`--health-cmd`).
    pub health: bool,
    /// A check collected while the sandbox is paused is not counted (the fix); false: it is,
    /// as before.
    pub discard_paused_checks: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Step(u8),
    /// `rm` or `start` picks its target among the listed sandboxes (`ps`, then the command
    /// with that id): each choice is a branch.
    Pick(u8, u8),
    Monitor(u8),
    KillCaller(u8),
    KillMonitor(u8),
    Other,
    /// After every caller: `rm -f` of a listed sandbox (its processes die, its record goes).
    Janitor(u8),
    /// `gc`: half-made directories of dead makers.
    Gc(u8),
    /// The monitor's health-check cycle, one step.
    Health(u8),
}

impl StoreModel {
    fn step(&self, w: &mut World, c: usize) {
        let me = w.callers[c];
        let pc = match me.verb {
            Verb::Launch { sb, held } => self.launch(w, c, sb as usize, held),
            Verb::Rm { force } => self.rm(w, c, force),
            Verb::Start => self.start(w, c),
            Verb::Stop => self.stop(w, c),
            Verb::Pause => {
                // (Lock, re-read and freeze as one step: under the sandbox's lock.)
                let Some(t) = w.callers[c].target.map(usize::from) else {
                    return w.callers[c].pc = Pc::Failed;
                };
                let s = w.sandboxes[t];
                let running = w
                    .record(t)
                    .is_some_and(|r| w.effective(r) == Status::Running);
                if w.callers[c].pc == Pc::Send {
                    // Then the `paused` mark (the freeze came first).
                    w.sandboxes[t].paused_mark = w.sandboxes[t].frozen;
                    Pc::Done
                } else if running
                    && w.dir_locks[t].is_none()
                    && s.init.is_some_and(|i| w.alive(i))
                    && !s.frozen
                {
                    w.sandboxes[t].frozen = true;
                    w.sandboxes[t].healthy_at_pause = s.healthy;
                    Pc::Send
                } else {
                    Pc::Failed
                }
            }
        };
        w.callers[c].pc = pc;
        if matches!(pc, Pc::Done | Pc::Failed) {
            w.release_locks(Locker::Caller(c as u8));
        }
    }

    fn launch(&self, w: &mut World, c: usize, sb: usize, held: bool) -> Pc {
        let me = w.callers[c].me;
        match w.callers[c].pc {
            Pc::Begin => {
                w.sandboxes[sb].dir = Dir::Tmp(me);
                w.sandboxes[sb].held = held;
                Pc::Rename
            }
            Pc::Rename => {
                w.sandboxes[sb].dir = Dir::Published(Record {
                    status: Status::Creating,
                    monitor: me,
                    init: None,
                });
                Pc::Symlink
            }
            Pc::Symlink => match w.link {
                None => {
                    w.link = Some(sb as u8);
                    w.sandboxes[sb].named = true;
                    Pc::Fork
                }
                Some(_) => Pc::NamesLocked,
            },
            Pc::NamesLocked => {
                // (Enabled only when the names lock is free: see `actions`.)
                w.names_lock = Some(c as u8);
                let next = match w.link {
                    None if self.retry_vanished_name => Pc::Symlink,
                    None => Pc::RemoveOwn,
                    Some(o) if w.dir_exists(o as usize) => Pc::RemoveOwn,
                    Some(_) => {
                        // A leftover of a sandbox whose directory is gone: taken over.
                        w.link = None;
                        Pc::Symlink
                    }
                };
                w.names_lock = None;
                next
            }
            Pc::RemoveOwn => {
                w.removing(sb);
                w.sandboxes[sb].dir = Dir::Absent;
                Pc::Failed
            }
            Pc::Fork => match w.spawn(Owner::Monitor(sb as u8)) {
                Some(p) => {
                    w.sandboxes[sb].monitor = Some(p);
                    w.sandboxes[sb].mon = Mon::Save;
                    Pc::Wait
                }
                None => Pc::RemoveOwn,
            },
            Pc::Wait => {
                // Enabled once the monitor reported or died.
                if w.sandboxes[sb].reported {
                    Pc::Done
                } else {
                    w.removing(sb);
                    if w.link == Some(sb as u8) {
                        w.link = None;
                    }
                    w.sandboxes[sb].dir = Dir::Absent;
                    Pc::Failed
                }
            }
            pc => pc,
        }
    }

    fn rm(&self, w: &mut World, c: usize, force: bool) -> Pc {
        let t = w.callers[c].target.map(usize::from);
        match (w.callers[c].pc, t) {
            // Nothing listed: "no such sandbox".
            (Pc::Begin, None) => Pc::Failed,
            (Pc::Lock, Some(t)) => {
                if !w.dir_exists(t) {
                    return Pc::Failed;
                }
                w.dir_locks[t] = Some(Locker::Caller(c as u8));
                Pc::Reread
            }
            (Pc::Reread, Some(t)) => match w.record(t) {
                None => Pc::Failed,
                Some(r) if w.effective(r) == Status::Stopped => Pc::Remove,
                Some(_) if !force => Pc::Failed,
                Some(r) if r.status == Status::Creating => {
                    // Waiting for the set-up to end must not hold the lock: the monitor's
                    // first record write takes it.
                    w.dir_locks[t] = None;
                    Pc::Settle
                }
                Some(_) => Pc::Kill,
            },
            // Enabled once the record is not `creating` or its monitor is dead.
            (Pc::Settle, Some(_)) => Pc::Lock,
            (Pc::Kill, Some(t)) => {
                // As `stop`: the mark first, so a `--restart` policy does not start it again;
                // a paused one is thawed first.
                w.sandboxes[t].stop_mark = true;
                w.thaw(t);
                if let Some(p) = w.record(t).and_then(|r| r.init).filter(|p| w.alive(*p)) {
                    // pidfd_open + start-time check passed: the signal is delivered.
                    if w.procs[p.pid as usize].0 != Owner::Init(t as u8) {
                        w.bad |= WRONG_SIGNAL;
                    }
                    w.exit(Some(p));
                }
                Pc::WaitMonitor
            }
            // Enabled once the recorded monitor is dead.
            (Pc::WaitMonitor, Some(_)) => Pc::Remove,
            (Pc::Remove, Some(t)) => {
                // remove_cgroups: a busy leaf is thawed (the fix) and killed; a frozen task
                // acts on no kill.
                if self.thaw_on_remove {
                    w.thaw(t);
                }
                if w.sandboxes[t].cgroup {
                    w.kill_init(t);
                    if !w.sandboxes[t].frozen {
                        w.sandboxes[t].cgroup = false;
                    }
                }
                w.removing(t);
                w.sandboxes[t].dir = Dir::Emptied;
                Pc::RemoveLink
            }
            (Pc::RemoveLink, Some(t)) => {
                if w.link == Some(t as u8) {
                    w.link = None;
                }
                Pc::RemoveDir
            }
            (Pc::RemoveDir, Some(t)) => {
                w.sandboxes[t].dir = Dir::Absent;
                Pc::Done
            }
            (pc, _) => pc,
        }
    }

    fn start(&self, w: &mut World, c: usize) -> Pc {
        let Some(t) = w.callers[c].target.map(usize::from) else {
            return Pc::Failed;
        };
        match w.callers[c].pc {
            Pc::Reread => match w.record(t) {
                Some(r) if w.effective(r) == Status::Created => Pc::Send,
                _ => Pc::Failed,
            },
            Pc::Send => {
                // The monitor handles one control message at a time.
                let s = w.sandboxes[t];
                if s.mon == Mon::Up
                    && s.monitor.is_some_and(|p| w.alive(p))
                    && w.record(t).is_some_and(|r| r.status == Status::Created)
                {
                    w.sandboxes[t].starts += 1;
                    w.write(t, |r| r.status = Status::Running);
                    Pc::Done
                } else {
                    Pc::Failed
                }
            }
            pc => pc,
        }
    }

    fn stop(&self, w: &mut World, c: usize) -> Pc {
        let Some(t) = w.callers[c].target.map(usize::from) else {
            return Pc::Done;
        };
        // What it signals: the init it read first, or (the fix) the one the record names now.
        let init = |w: &World| -> Option<PRef> {
            if self.stop_rereads {
                w.record(t).and_then(|r| r.init)
            } else {
                w.callers[c].seen_init
            }
        };
        let kill = |w: &mut World, p: Option<PRef>| {
            if let Some(p) = p.filter(|p| w.alive(*p)) {
                if w.procs[p.pid as usize].0 != Owner::Init(t as u8) {
                    w.bad |= WRONG_SIGNAL;
                }
                // (The fix) a sandbox paused again meanwhile is thawed again first.
                if self.stop_rereads {
                    w.thaw(t);
                }
                if w.sandboxes[t].frozen && w.sandboxes[t].init == Some(p) {
                    w.sandboxes[t].doomed = true;
                } else {
                    w.exit(Some(p));
                }
            }
        };
        match w.callers[c].pc {
            Pc::Mark => match w.record(t) {
                // Gone: nothing to stop. Stopped: the mark still ends a restart to come.
                None => Pc::Done,
                Some(r) => {
                    w.sandboxes[t].stop_mark = true;
                    w.callers[c].seen_init = r.init;
                    if w.effective(r) == Status::Stopped {
                        // Lost while paused: thawed, its pending SIGKILL ends it (the fix).
                        if self.stop_rereads {
                            w.thaw(t);
                        }
                        Pc::StopKilledWait
                    } else {
                        Pc::Term
                    }
                }
            },
            Pc::Term => {
                w.thaw(t);
                let p = init(w);
                kill(w, p);
                Pc::StopWait
            }
            // Enabled: the monitor exited (done), or the timeout ran out (-> SIGKILL), below.
            Pc::StopWait | Pc::StopKilledWait if !w.monitor_alive(t) => Pc::Done,
            Pc::StopWait => Pc::StopKill,
            Pc::StopKill => {
                let p = init(w);
                kill(w, p);
                Pc::StopKilledWait
            }
            Pc::StopKilledWait if self.stop_rereads => {
                // (The fix) still up after the timeout: SIGKILL what runs now, and wait again.
                let p = init(w);
                kill(w, p);
                Pc::StopKilledWait
            }
            // 30 s after its SIGKILL the monitor is still there: "did not stop".
            Pc::StopKilledWait => Pc::Failed,
            pc => pc,
        }
    }

    /// The sandbox's init, cloned (no pid left: the monitor gives up).
    fn clone_init(w: &mut World, sb: usize) {
        match w.spawn(Owner::Init(sb as u8)) {
            Some(i) => {
                w.sandboxes[sb].init = Some(i);
                w.sandboxes[sb].mon = Mon::Ready;
            }
            None => {
                w.sandboxes[sb].cgroup = false;
                let me = w.sandboxes[sb].monitor;
                w.exit(me);
                w.sandboxes[sb].mon = Mon::Gone;
            }
        }
    }

    fn monitor(&self, w: &mut World, sb: usize) {
        let s = w.sandboxes[sb];
        let me = s.monitor;
        match s.mon {
            Mon::Save if self.locked_first_save => {
                if !w.dir_exists(sb) {
                    // The directory went (flock on it fails, or the record is gone).
                    w.exit(me);
                    w.sandboxes[sb].mon = Mon::Gone;
                } else {
                    w.dir_locks[sb] = Some(Locker::Monitor(sb as u8));
                    w.sandboxes[sb].mon = Mon::SaveLocked;
                }
            }
            Mon::SaveLocked => {
                let ok = match me {
                    Some(m) => w.write(sb, |r| r.monitor = m),
                    None => false,
                };
                w.dir_locks[sb] = None;
                if ok {
                    w.sandboxes[sb].mon = Mon::Clone;
                } else {
                    w.exit(me);
                    w.sandboxes[sb].mon = Mon::Gone;
                }
            }
            Mon::Save => {
                // Unchecked: a failed write is ignored.
                if let Some(m) = me {
                    w.write(sb, |r| r.monitor = m);
                }
                w.sandboxes[sb].mon = Mon::Clone;
            }
            Mon::Clone => {
                w.sandboxes[sb].cgroup = true;
                Self::clone_init(w, sb);
            }
            Mon::Ready => {
                let (status, init) = (
                    if s.held {
                        Status::Created
                    } else {
                        Status::Running
                    },
                    s.init,
                );
                w.write(sb, |r| {
                    r.status = status;
                    r.init = init;
                });
                if !s.held && s.starts == 0 {
                    w.sandboxes[sb].starts += 1;
                }
                w.sandboxes[sb].reported = true;
                w.sandboxes[sb].mon = Mon::Up;
            }
            Mon::Up if s.restarts_left > 0 && !s.stop_mark && w.record(sb).is_some() => {
                // Init exited and the policy wants it again: `restarting`, then the back-off.
                w.sandboxes[sb].restarts_left -= 1;
                w.sandboxes[sb].mon = Mon::Backoff;
            }
            Mon::Backoff if !s.stop_mark && w.record(sb).is_some() => {
                // The back-off is over and no stop was asked: a new init.
                Self::clone_init(w, sb);
            }
            Mon::Up | Mon::Backoff => {
                // Init exited for good: the final record, the cgroup removed, the monitor exits.
                w.write(sb, |r| r.status = Status::Stopped);
                w.sandboxes[sb].cgroup = false;
                w.exit(me);
                w.sandboxes[sb].mon = Mon::Gone;
            }
            Mon::NotForked | Mon::Gone => {}
        }
    }

    fn monitor_enabled(&self, w: &World, sb: usize) -> bool {
        let s = &w.sandboxes[sb];
        let alive = s.monitor.is_some_and(|p| w.alive(p));
        match s.mon {
            Mon::NotForked | Mon::Gone => false,
            Mon::Save if self.locked_first_save => alive && w.dir_locks[sb].is_none(),
            Mon::Up => alive && !s.init.is_some_and(|p| w.alive(p)),
            Mon::Backoff => alive,
            _ => alive,
        }
    }

    fn caller_enabled(&self, w: &World, c: usize) -> bool {
        let me = &w.callers[c];
        if !w.alive(me.me) {
            return false;
        }
        let t = me.target.map(usize::from);
        match (me.pc, t) {
            (Pc::Done | Pc::Failed | Pc::Killed, _) => false,
            (Pc::NamesLocked, _) => w.names_lock.is_none(),
            (Pc::Wait, _) => {
                let Verb::Launch { sb, .. } = me.verb else {
                    return false;
                };
                let s = &w.sandboxes[sb as usize];
                s.reported || !s.monitor.is_some_and(|p| w.alive(p))
            }
            (Pc::Lock, Some(t)) => w.dir_locks[t].is_none(),
            (Pc::Settle, Some(t)) => w
                .record(t)
                .is_none_or(|r| r.status != Status::Creating || !w.alive(r.monitor)),
            (Pc::WaitMonitor, Some(t)) => w.record(t).is_none_or(|r| !w.alive(r.monitor)),
            (Pc::StopWait | Pc::StopKilledWait | Pc::StopKill, _) => true,
            // settled(): a sandbox being set up is waited for first.
            (Pc::Mark, Some(t)) => w
                .record(t)
                .is_none_or(|r| r.status != Status::Creating || !w.alive(r.monitor)),
            _ => true,
        }
    }
}

impl Model for StoreModel {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        let n = self
            .verbs
            .iter()
            .filter(|v| matches!(v, Verb::Launch { .. }))
            .count();
        let mut w = World {
            procs: [(Owner::Free, 0); PIDS],
            gen: 0,
            sandboxes: vec![
                Sandbox {
                    dir: Dir::Absent,
                    cgroup: false,
                    mon: Mon::NotForked,
                    monitor: None,
                    init: None,
                    held: false,
                    named: false,
                    reported: false,
                    starts: 0,
                    restarts_left: self.restarts,
                    stop_mark: false,
                    frozen: false,
                    doomed: false,
                    paused_mark: false,
                    healthy: true,
                    check: Check::Idle,
                    healthy_at_pause: true,
                };
                n
            ],
            callers: vec![],
            link: None,
            names_lock: None,
            dir_locks: vec![None; n],
            kills_left: self.kills,
            others_left: self.others,
            bad: 0,
            locked_first_save: self.locked_first_save,
        };
        for (i, v) in self.verbs.iter().enumerate() {
            let Some(me) = w.spawn(Owner::Caller(i as u8)) else {
                continue;
            };
            w.callers.push(Caller {
                verb: *v,
                pc: Pc::Begin,
                me,
                target: None,
                seen_init: None,
            });
        }
        vec![w]
    }

    fn actions(&self, w: &World, out: &mut Vec<Action>) {
        for c in 0..w.callers.len() {
            let me = &w.callers[c];
            let running = !matches!(me.pc, Pc::Done | Pc::Failed | Pc::Killed);
            if running && w.kills_left > 0 && matches!(me.verb, Verb::Launch { .. }) {
                out.push(Action::KillCaller(c as u8));
            }
            if !self.caller_enabled(w, c) {
                continue;
            }
            let me = &w.callers[c];
            let listed: Vec<u8> = (0..w.sandboxes.len())
                .filter(|t| w.record(*t).is_some())
                .map(|t| t as u8)
                .collect();
            if me.pc == Pc::Begin && !listed.is_empty() && !matches!(me.verb, Verb::Launch { .. }) {
                out.extend(listed.iter().map(|t| Action::Pick(c as u8, *t)));
            } else {
                out.push(Action::Step(c as u8));
            }
        }
        for sb in 0..w.sandboxes.len() {
            if self.monitor_enabled(w, sb) {
                out.push(Action::Monitor(sb as u8));
            }
            let s = &w.sandboxes[sb];
            if self.health
                && s.mon == Mon::Up
                && w.monitor_alive(sb)
                && s.init.is_some_and(|i| w.alive(i))
            {
                out.push(Action::Health(sb as u8));
            }
            let s = &w.sandboxes[sb];
            if w.kills_left > 0 && s.monitor.is_some_and(|p| w.alive(p)) {
                out.push(Action::KillMonitor(sb as u8));
            }
        }
        if w.others_left > 0 && w.procs.iter().any(|(o, _)| *o == Owner::Free) {
            out.push(Action::Other);
        }
        if w.callers_done() {
            for sb in 0..w.sandboxes.len() {
                let s = &w.sandboxes[sb];
                match s.dir {
                    Dir::Published(_) | Dir::Emptied => out.push(Action::Janitor(sb as u8)),
                    Dir::Tmp(m) if !w.alive(m) => out.push(Action::Gc(sb as u8)),
                    Dir::Absent if s.cgroup && !w.live(sb) => out.push(Action::Gc(sb as u8)),
                    _ => {}
                }
            }
        }
    }

    fn next_state(&self, last: &World, a: Action) -> Option<World> {
        let mut w = last.clone();
        match a {
            Action::Step(c) => self.step(&mut w, c as usize),
            Action::Pick(c, t) => {
                let c = c as usize;
                w.callers[c].target = Some(t);
                w.callers[c].pc = match w.callers[c].verb {
                    Verb::Start => Pc::Reread,
                    Verb::Stop => Pc::Mark,
                    _ => Pc::Lock,
                };
            }
            Action::Monitor(sb) => self.monitor(&mut w, sb as usize),
            Action::KillCaller(c) => {
                let me = w.callers[c as usize].me;
                w.exit(Some(me));
                w.callers[c as usize].pc = Pc::Killed;
                w.release_locks(Locker::Caller(c));
                w.kills_left -= 1;
            }
            Action::KillMonitor(sb) => {
                w.monitor_dies(sb as usize);
                w.kills_left -= 1;
            }
            Action::Other => {
                w.spawn(Owner::Other);
                w.others_left -= 1;
            }
            Action::Janitor(sb) => {
                let sb = sb as usize;
                // rm -f: thaw, kill init, the monitor records the exit and leaves, the record
                // goes.
                w.thaw(sb);
                let (m, i) = (w.sandboxes[sb].monitor, w.sandboxes[sb].init);
                w.exit(i);
                w.exit(m);
                w.sandboxes[sb].mon = Mon::Gone;
                w.sandboxes[sb].cgroup = false;
                w.sandboxes[sb].dir = Dir::Absent;
                if w.link == Some(sb as u8) {
                    w.link = None;
                }
            }
            Action::Health(sb) => {
                let s = &mut w.sandboxes[sb as usize];
                s.check = match s.check {
                    // Not spawned while the sandbox is marked paused.
                    Check::Idle if s.paused_mark => Check::Idle,
                    Check::Idle => Check::Spawned,
                    // `exec` refuses a paused sandbox: the check fails.
                    Check::Spawned => Check::Ran { ok: !s.paused_mark },
                    Check::Ran { .. } if self.discard_paused_checks && s.paused_mark => Check::Idle,
                    Check::Ran { ok } => {
                        s.healthy = ok;
                        Check::Idle
                    }
                };
            }
            Action::Gc(sb) => {
                // Half-made directories of dead makers; empty cgroups of dead holders.
                let s = &mut w.sandboxes[sb as usize];
                if matches!(s.dir, Dir::Tmp(_)) {
                    s.dir = Dir::Absent;
                } else {
                    s.cgroup = false;
                }
            }
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "a signal reaches only the sandbox's own process",
                |_, w: &World| w.bad & WRONG_SIGNAL == 0,
            ),
            Property::always("rm never removes a live sandbox", |_, w: &World| {
                w.bad & REMOVED_LIVE == 0
            }),
            Property::always("a name maps to at most one live sandbox", |_, w: &World| {
                (0..w.sandboxes.len())
                    .all(|sb| !(w.sandboxes[sb].named && w.live(sb)) || w.link == Some(sb as u8))
            }),
            Property::always(
                "nothing is out of reach of ps, rm -f and gc",
                |_, w: &World| {
                    // A live process needs a record; so does a cgroup, unless its holder (the
                    // monitor) is dead and it is empty: `gc` removes those.
                    !w.callers_done()
                        || (0..w.sandboxes.len()).all(|sb| {
                            let s = &w.sandboxes[sb];
                            let held = s.cgroup && s.monitor.is_some_and(|m| w.alive(m));
                            w.record(sb).is_some() || !(w.live(sb) || held)
                        })
                },
            ),
            Property::always("a stop ends with the sandbox stopped", |_, w: &World| {
                w.callers.iter().all(|c| {
                    c.verb != Verb::Stop
                        || match (c.pc, c.target) {
                            (Pc::Failed, _) => false,
                            (Pc::Done, Some(t)) => !w.live(t as usize),
                            _ => true,
                        }
                })
            }),
            Property::always("health does not change while paused", |_, w: &World| {
                w.sandboxes
                    .iter()
                    .all(|s| !s.paused_mark || s.healthy == s.healthy_at_pause)
            }),
            Property::always("a workload is released at most once", |_, w: &World| {
                w.sandboxes.iter().all(|s| s.starts <= 1)
            }),
            Property::eventually(
                "rm -f of every listed sandbox and gc leave nothing",
                |_, w: &World| {
                    // (Every caller done: the start, where nothing is there yet, does not count.)
                    w.callers_done()
                        && w.link.is_none()
                        && w.sandboxes
                            .iter()
                            .all(|s| s.dir == Dir::Absent && !s.cgroup)
                        && w.procs
                            .iter()
                            .all(|(o, _)| !matches!(o, Owner::Monitor(_) | Owner::Init(_)))
                },
            ),
            Property::sometimes("two launchers raced for the name", |_, w: &World| {
                w.sandboxes.len() > 1 && w.sandboxes.iter().filter(|s| s.named).count() == 2
            }),
        ]
    }
}
