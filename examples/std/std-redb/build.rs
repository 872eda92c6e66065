fn main() {
    // The nabla guest (the default feature) links as a std guest; without
    // the feature this is an ordinary program for Linux.
    if std::env::var_os("CARGO_FEATURE_NABLA").is_some() {
        libos_build::link_std_guest();
    }
}
