fn main() {
    libos_build::link_guest();
}
